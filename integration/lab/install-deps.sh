#!/usr/bin/env bash
# install-deps.sh demo|test: install, idempotently, what the host needs.
#   demo  the compose lab (make demo): the Docker engine and Compose, and
#         debootstrap, which base-image.sh needs when no registry serves
#         debian:<suite>-slim; checks Go
#   test  everything `make test` needs (.ci/run): the demo's, plus Debian's
#         etcd and HAProxy for the loopback tests (their Patroni is
#         simulated, see integration/local), socat, and gcc for -race
# Missing Debian packages (docker.io and docker-compose when there is no
# docker CLI or no Compose) are installed with one apt-get update and one
# apt-get install: as root, or through sudo. Without either, and for what
# apt cannot provide (Go), it fails with what to do.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin   # debootstrap and haproxy live there

mode=${1:-}
case $mode in
  demo) packages=(debootstrap); need=(docker go) ;;
  test) packages=(haproxy etcd-server etcd-client debootstrap socat gcc libc6-dev); need=(docker go haproxy etcd etcdctl debootstrap) ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

fail() { echo "install-deps: $*" >&2; exit 1; }

has_compose() { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; }

# The Docker engine and Compose from Debian when the host has none (a
# docker CLI from elsewhere, Docker's own packages included, is kept).
command -v docker >/dev/null || packages+=(docker.io)
has_compose || packages+=(docker-compose)

# as_root runs a command as root: directly, or through sudo.
can_root() { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    can_root ||
      fail "missing Debian packages ${missing[*]}, and this user is neither root nor has sudo: as root, run apt-get update && apt-get install ${missing[*]}"
    how=; [ "$(id -u)" = 0 ] || how=" (through sudo)"
    echo "install-deps: installing ${missing[*]}$how"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      fail "apt-get update failed: cannot install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      fail "apt-get install ${missing[*]} failed"
  fi
else
  echo "install-deps: no dpkg on this host: install ${packages[*]} (or their equivalents) yourself"
fi

for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null || case $bin in
    go) fail "go not found: install Go 1.26 or newer (https://go.dev/dl/) and put it on PATH" ;;
    docker) fail "docker not found: install the Docker engine (Debian: apt-get install docker.io docker-compose)" ;;
    *) fail "$bin not found: its Debian package is installed, but the binary is not on PATH ($PATH)" ;;
  esac
done

# A Docker engine installed but not running (the package did not start
# it): start it once, where systemd manages it.
if ! docker info >/dev/null 2>&1 && can_root && command -v systemctl >/dev/null &&
  systemctl cat docker.service >/dev/null 2>&1; then
  echo "install-deps: starting the Docker engine (systemctl start docker)"
  as_root systemctl start docker || true
fi
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n docker info >/dev/null 2>&1; then
    fail "the Docker engine runs, but $(id -un) may not use it: sudo usermod -aG docker $(id -un), then log in again (or run as root)"
  fi
  fail "the Docker engine is not reachable (is dockerd running, may this user use it?): the compose lab needs it"
fi
has_compose || fail "neither 'docker compose' nor docker-compose is available (Debian: apt-get install docker-compose)"
