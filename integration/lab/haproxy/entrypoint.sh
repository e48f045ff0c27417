#!/usr/bin/env bash
# lab-haproxy-entrypoint: HAProxy (master-worker) and the pgsvc daemon in one
# container, the way pgsvc is deployed beside HAProxy on a node. The container
# ends when either process ends (status of the first to exit), so a pgsvc crash
# is visible in `docker ps -a` and never hidden by a restart.
#
# Signals: TERM/INT stop both; HUP is passed to pgsvc (re-read the inventory):
#   docker kill -s HUP pgsvc-haproxy
# Environment: PGSVC_ARGS  extra arguments for `pgsvc run` (e.g. --log-level debug)
# Socket paths are the flavour's (/etc/pgsvc/lab.env).
set -euo pipefail
# shellcheck source=trixie/lab.env
. /etc/pgsvc/lab.env

INV=/etc/pgsvc/inventory.yml
SEED=/etc/pgsvc/seed/inventory.yml   # fixtures/inventory/lab.yml, mounted read-only
CONF=/etc/pgsvc/pgsvc.yml
MAIN=/etc/haproxy/haproxy.cfg
DIR=/etc/haproxy/conf.d

mkdir -p "$(dirname "$ADMIN_SOCK")" "$(dirname "$MASTER_SOCK")" "$DIR"
rm -f "$ADMIN_SOCK" "$MASTER_SOCK"   # left by a previous run

# The inventory is a copy, so tests can edit it in the container (then HUP).
# A new container starts from the seed again.
[ -f "$INV" ] || cp "$SEED" "$INV"

# HAProxy needs its service files before it first starts. pgsvc keeps them up
# to date afterwards; on a container restart the files it wrote are kept.
if ! compgen -G "$DIR/*.cfg" >/dev/null; then
  pgsvc render --inventory "$INV" --out "$DIR"
fi
haproxy -c -q -f "$MAIN" -f "$DIR"

haproxy -W -S "$MASTER_SOCK" -f "$MAIN" -f "$DIR" &
hap=$!
for _ in $(seq 100); do [ -S "$ADMIN_SOCK" ] && break; sleep 0.1; done
[ -S "$ADMIN_SOCK" ] || { echo "lab-haproxy: no admin socket $ADMIN_SOCK after 10s" >&2; exit 1; }

# shellcheck disable=SC2086  # PGSVC_ARGS is split on purpose
pgsvc run --config "$CONF" ${PGSVC_ARGS:-} &
svc=$!
echo "lab-haproxy: $(haproxy -v | head -1); master pid $hap, pgsvc pid $svc"

trap 'kill -TERM "$svc" "$hap" 2>/dev/null || true' TERM INT
trap 'kill -HUP "$svc" 2>/dev/null || true' HUP

# Wait until one of them exits. A trapped signal also ends `wait` early, with
# `ended` unset: keep waiting then.
rc=0
while :; do
  if wait -n -p ended "$hap" "$svc"; then rc=0; else rc=$?; fi
  [ -n "${ended:-}" ] && break
done
if [ "$ended" = "$svc" ]; then who=pgsvc; else who=haproxy; fi
echo "lab-haproxy: $who exited with status $rc; stopping the container" >&2
kill -TERM "$svc" "$hap" 2>/dev/null || true
wait || true
exit "$rc"
