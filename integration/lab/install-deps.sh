#!/usr/bin/env bash
# install-deps.sh demo|test: install, idempotently, what the host needs.
#   demo  the compose lab (make demo): debootstrap for the base images when no
#         registry serves debian:<suite>-slim; checks Go, Docker and Compose
#   test  everything `make test` needs (.ci/run): the demo's, plus etcd,
#         HAProxy, Patroni, PostgreSQL and pgbouncer from Debian for the
#         loopback tests, socat, and gcc for go test -race
# Missing Debian packages are installed with apt-get (as root); what apt
# cannot provide (the Docker engine, Go) fails with what to do.
set -euo pipefail

mode=${1:-}
case $mode in
  demo) packages=(debootstrap) ;;
  test) packages=(haproxy etcd-server etcd-client patroni postgresql-15 pgbouncer debootstrap socat gcc libc6-dev) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

fail() { echo "install-deps: $*" >&2; exit 1; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || fail "missing Debian packages ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}"
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bins=(debootstrap docker go)
[ "$mode" = test ] && bins+=(haproxy etcd etcdctl patroni)
for bin in "${bins[@]}"; do
  command -v "$bin" >/dev/null || case $bin in
    go) fail "go not found: install Go 1.22 or newer (https://go.dev/dl/) and put it on PATH" ;;
    docker) fail "docker not found: install the Docker engine (apt-get install docker.io docker-compose)" ;;
    *) fail "$bin not found after installing its package" ;;
  esac
done
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable (is dockerd running, may this user use it?): the compose lab needs it"
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null ||
  fail "neither 'docker compose' nor docker-compose is available (apt-get install docker-compose)"
