#!/usr/bin/env bash
# one-flavour.sh LAB: refuse to start flavour LAB while another flavour's lab
# holds the lab's containers (same names, addresses and ports).
set -euo pipefail
lab=$1
other=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' pgsvc-haproxy pgsvc-etcd 2>/dev/null |
  grep -v "^pgsvc-$lab\$" | grep . | head -1 || true)
if [ -n "$other" ]; then
  echo "the lab's containers belong to compose project $other; one flavour runs at a time:" >&2
  echo "  make demo-down LAB=${other#pgsvc-}" >&2
  exit 1
fi
