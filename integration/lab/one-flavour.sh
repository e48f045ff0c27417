#!/usr/bin/env bash
# one-flavour.sh LAB: refuse to start flavour LAB while containers of
# another lab (another flavour, or a lab started under another compose
# project name) hold the lab's names, addresses and ports.
set -euo pipefail
lab=$1
for c in pgsvc-etcd pg-test-1 pg-test-2 pg-test-3 pgsvc-haproxy; do
  docker inspect "$c" >/dev/null 2>&1 || continue
  project=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' "$c")
  [ "$project" = "pgsvc-$lab" ] && continue
  echo "container $c belongs to another lab; one lab runs at a time. Remove it first:" >&2
  case $project in
    pgsvc-*) echo "  make demo-down LAB=${project#pgsvc-}" >&2 ;;
    "" | "<no value>") echo "  docker rm -f $c" >&2 ;;
    *) echo "  docker-compose -p $project down -v   (or: docker compose -p $project down -v)" >&2 ;;
  esac
  exit 1
done
