#!/usr/bin/env bash
# wait-ready.sh - wait until the compose lab is ready, then print how to use it.
#
# Ready means:
#   1. Patroni: one running leader and two replicas streaming from it
#      (lab-ready inside pg-test-1 checks /cluster and pg_stat_replication);
#   2. HAProxy: 5433 and 5436 reach a primary, 5434 and 5438 a replica
#      (psql inside the haproxy container, through pgbouncer or not, as rendered).
# Settings: TIMEOUT (seconds, default 300).
set -euo pipefail

TIMEOUT=${TIMEOUT:-300}
NODE=pg-test-1
HAP=pgsvc-haproxy
start=$SECONDS

CONTAINERS=(pgsvc-etcd pg-test-1 pg-test-2 pg-test-3 "$HAP")

# all_running: fail (with the container's last log lines) if one has stopped
all_running() {
  local c
  for c in "${CONTAINERS[@]}"; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" != true ]; then
      echo "container $c is not running; its last log lines:" >&2
      docker logs --tail 20 "$c" >&2 || true
      exit 1
    fi
  done
}

# wait_for DESCRIPTION CMD...: retry CMD every second until it succeeds,
# printing its output whenever it changes; give up after TIMEOUT.
wait_for() {
  local desc=$1 out last=""
  shift
  echo "waiting for $desc"
  until out=$("$@" 2>&1); do
    all_running
    if [ "$out" != "$last" ]; then echo "  $out"; last=$out; fi
    if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
      echo "TIMEOUT after ${TIMEOUT}s waiting for $desc" >&2
      docker ps -a --filter network=pgsvc-lab >&2
      exit 1
    fi
    sleep 1
  done
  echo "  $out ($((SECONDS - start))s)"
}

# routes PORT WANT: psql through HAProxy's PORT answers pg_is_in_recovery() = WANT
routes() {
  local got
  got=$(docker exec "$HAP" psql "host=127.0.0.1 port=$1 user=postgres password=postgres dbname=postgres connect_timeout=2" \
    -Atc 'select pg_is_in_recovery()') || return 1
  [ "$got" = "$2" ] || { echo "port $1: pg_is_in_recovery=$got, want $2"; return 1; }
  printf '%s ' "$1:$got"
}
haproxy_routes() { routes 5433 f && routes 5434 t && routes 5436 f && routes 5438 t && echo "(port:pg_is_in_recovery)"; }

wait_for "Patroni: a leader and 2 streaming replicas" docker exec "$NODE" lab-ready 3
wait_for "HAProxy: primary, replica, default and offline services" haproxy_routes

# host_port PORT: where the haproxy container's PORT is published on the host
host_port() { docker port "$HAP" "$1/tcp" | sed -n 1p; }

cat <<INFO

pgsvc lab is ready after $((SECONDS - start))s.

Services (user postgres, password postgres):
  primary  PGPASSWORD=postgres psql -h 127.0.0.1 -p ${LAB_PRIMARY_PORT:-5433} -U postgres postgres   # $(host_port 5433), read-write via pgbouncer
  replica  PGPASSWORD=postgres psql -h 127.0.0.1 -p ${LAB_REPLICA_PORT:-5434} -U postgres postgres   # $(host_port 5434), read-only via pgbouncer
  default  PGPASSWORD=postgres psql -h 127.0.0.1 -p ${LAB_DEFAULT_PORT:-5436} -U postgres postgres   # $(host_port 5436), read-write, PostgreSQL directly
  offline  PGPASSWORD=postgres psql -h 127.0.0.1 -p ${LAB_OFFLINE_PORT:-5438} -U postgres postgres   # $(host_port 5438), pg-test-3 (pg_offline_query)
  stats    http://$(host_port 9101)/   metrics: http://$(host_port 9101)/metrics
  etcd     ETCDCTL_API=3 etcdctl --endpoints=http://$(docker port pgsvc-etcd 2379/tcp | sed -n 1p) get --prefix /pg/

Try:
  docker exec $NODE patronictl -c /etc/patroni/patroni.yml list
  docker exec $NODE patronictl -c /etc/patroni/patroni.yml switchover --leader LEADER --candidate pg-test-2 --force
  docker exec $HAP lab-pgsvc status
  docker logs -f $HAP          # pgsvc's log: what it applied
  make demo-down LAB=${LAB:-trixie}   # remove everything

INFO
docker exec "$NODE" patronictl -c /etc/patroni/patroni.yml list
echo
docker exec "$HAP" lab-pgsvc status
