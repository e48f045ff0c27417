#!/usr/bin/env bash
# install-deps.sh demo|test: install, idempotently, what the host needs.
#   demo  the compose lab (make demo): checks Go, Docker and Compose, and
#         installs debootstrap, which base-image.sh needs when no registry
#         serves debian:<suite>-slim (as non-root it only says so)
#   test  everything `make test` needs (.ci/run): the demo's, plus Debian's
#         etcd and HAProxy for the loopback tests (their Patroni is
#         simulated, see integration/local), socat, and gcc for -race
# Missing Debian packages are installed with apt-get (as root); what apt
# cannot provide (the Docker engine, Go) fails with what to do.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin   # debootstrap and haproxy live there

mode=${1:-}
case $mode in
  demo) packages=(debootstrap); need=(docker go) ;;
  test) packages=(haproxy etcd-server etcd-client debootstrap socat gcc libc6-dev); need=(docker go haproxy etcd etcdctl debootstrap) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

fail() { echo "install-deps: $*" >&2; exit 1; }

if command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
      echo "install-deps: installing ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq "${missing[@]}" >/dev/null
    elif [ "$mode" = test ]; then
      fail "missing Debian packages ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}"
    else
      echo "install-deps: ${missing[*]} not installed (needs root: sudo apt-get install ${missing[*]}); fine while a registry serves the base images"
    fi
  fi
else
  echo "install-deps: no dpkg on this host: install ${packages[*]} (or their equivalents) yourself"
fi

for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null || case $bin in
    go) fail "go not found: install Go 1.26 or newer (https://go.dev/dl/) and put it on PATH" ;;
    docker) fail "docker not found: install the Docker engine (apt-get install docker.io docker-compose)" ;;
    *) fail "$bin not found: its Debian package is installed, but the binary is not on PATH ($PATH)" ;;
  esac
done
docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable (is dockerd running, may this user use it?): the compose lab needs it"
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null ||
  fail "neither 'docker compose' nor docker-compose is available (apt-get install docker-compose)"
