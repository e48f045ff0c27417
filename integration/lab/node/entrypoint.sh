#!/usr/bin/env bash
# lab-node-entrypoint: start pgbouncer, HAProxy and `pgsvc run --node` (this
# node's own services, as Pigsty deploys HAProxy on every node), then Patroni
# (which runs PostgreSQL), pgbouncer and Patroni as user postgres. Patroni is
# exec'd, so the container lives exactly as long as Patroni: `docker stop` is
# a graceful Patroni shutdown (leader key released; HAProxy and pgsvc are
# killed with the container, so the node's pgsvc agent is gone after its
# agent_ttl), `docker kill` a whole-node crash (keys expire after ttl).
#
# Environment:
#   PATRONI_NAME   member name, required (pg-test-1 ...)
#   PATRONI_SCOPE  cluster name (default pg-test)
#   ETCD_HOSTS     etcd3 host:port list (default etcd:2379)
#   NODE_IP        address other nodes and HAProxy use (default: this container's IP)
#   LAB_TTL, LAB_LOOP_WAIT, LAB_RETRY_TIMEOUT  bootstrap DCS timings (default 30/5/10);
#                  only used when the cluster is first created
set -euo pipefail

: "${PATRONI_NAME:?set PATRONI_NAME, e.g. pg-test-1}"
export PATRONI_SCOPE=${PATRONI_SCOPE:-pg-test}
ETCD_HOSTS=${ETCD_HOSTS:-etcd:2379}
NODE_IP=${NODE_IP:-$(hostname -i | awk '{print $1}')}

# Data lives on a volume mounted at /pg; the socket dir is not in the image.
chown postgres:postgres /pg
chmod 0700 /pg
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

# The suite's PostgreSQL (15 on bookworm, 17 on trixie).
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

sed -e "s|@NAME@|$PATRONI_NAME|g" -e "s|@PG_BIN@|$PG_BIN|g" -e "s|@SCOPE@|$PATRONI_SCOPE|g" -e "s|@IP@|$NODE_IP|g" \
    -e "s|@ETCD_HOSTS@|$ETCD_HOSTS|g" -e "s|@TTL@|${LAB_TTL:-30}|g" \
    -e "s|@LOOP_WAIT@|${LAB_LOOP_WAIT:-5}|g" -e "s|@RETRY_TIMEOUT@|${LAB_RETRY_TIMEOUT:-10}|g" \
    /etc/patroni/patroni.yml.in >/etc/patroni/patroni.yml
chmod 0644 /etc/patroni/patroni.yml
echo "lab-node: $PATRONI_NAME ($NODE_IP), scope $PATRONI_SCOPE, etcd $ETCD_HOSTS, $("$PG_BIN/postgres" --version), $(patroni --version)"

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups env HOME=/var/lib/postgresql "$@"; }

# pgbouncer in the background (logs to the container's stderr); it connects to
# PostgreSQL lazily, so it may start first.
as_postgres pgbouncer /etc/pgbouncer/pgbouncer.ini &

# HAProxy and pgsvc, as in the proxy container (lab.env: socket paths), but
# serving this node's own cluster (--node) under the member's name.
# shellcheck source=../haproxy/trixie/lab.env
. /etc/pgsvc/lab.env
[ -f /etc/pgsvc/inventory.yml ] || cp /etc/pgsvc/seed/inventory.yml /etc/pgsvc/inventory.yml
mkdir -p "$(dirname "$ADMIN_SOCK")" "$(dirname "$MASTER_SOCK")"
rm -f "$ADMIN_SOCK" "$MASTER_SOCK"
if ! compgen -G "/etc/haproxy/conf.d/*.cfg" >/dev/null; then
  pgsvc render --inventory /etc/pgsvc/inventory.yml --node "$NODE_IP" --out /etc/haproxy/conf.d
fi
haproxy -c -q -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d
haproxy -W -S "$MASTER_SOCK" -f /etc/haproxy/haproxy.cfg -f /etc/haproxy/conf.d &
for _ in $(seq 100); do [ -S "$ADMIN_SOCK" ] && break; sleep 0.1; done
[ -S "$ADMIN_SOCK" ] || { echo "lab-node: no HAProxy admin socket $ADMIN_SOCK after 10s" >&2; exit 1; }
pgsvc run --config /etc/pgsvc/pgsvc.yml --node "$NODE_IP" --agent-name "$PATRONI_NAME" &

exec setpriv --reuid=postgres --regid=postgres --init-groups \
  env HOME=/var/lib/postgresql patroni /etc/patroni/patroni.yml
