#!/usr/bin/env bash
# base-image.sh - make sure the local image debian:<suite>-slim exists.
#
# The lab's Dockerfiles say FROM debian:${SUITE}-slim (bookworm or trixie:
# the lab flavour, LAB in the Makefile). With a registry, that is
# an ordinary pull. Without one (air-gapped hosts, CI sandboxes), this script
# builds an equivalent image with debootstrap (minbase, like the official slim
# image) from the Debian mirror the host itself uses, and imports it.
#
# Fast and does nothing when the image already exists.
# Settings (environment):
#   SUITE           Debian suite                (default trixie)
#   BASE_IMAGE      image to provide            (default debian:$SUITE-slim)
#   MIRROR          Debian mirror for $SUITE    (default: the host's apt mirror, else deb.debian.org)
#   SECURITY_MIRROR Debian security mirror      (default: the host's, else deb.debian.org/debian-security)
#   NO_PULL=1       skip the registry pull attempt
set -euo pipefail

SUITE=${SUITE:-trixie}
BASE_IMAGE=${BASE_IMAGE:-debian:$SUITE-slim}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base-image: $BASE_IMAGE present"
  exit 0
fi

# 1. A registry, if there is one, is the normal way.
if [ "${NO_PULL:-0}" != 1 ] && timeout 300 docker pull "$BASE_IMAGE"; then
  exit 0
fi
echo "base-image: cannot pull $BASE_IMAGE; building it with debootstrap"

[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root (run: sudo $0)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "base-image: install debootstrap (apt-get install debootstrap)" >&2; exit 1; }

# host_mirror REGEX: first apt source URI of the host whose path matches REGEX
# (deb822 .sources files and one-line sources.list both).
host_mirror() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i} /^deb / {print ($2 ~ /^\[/) ? $3 : $2}' |
    grep -E "$1" | head -1 || true
}
MIRROR=${MIRROR:-$(host_mirror '/debian/?$')}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(host_mirror '/debian-security/?$')}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
echo "base-image: mirror $MIRROR, security $SECURITY_MIRROR"

ROOT=$(mktemp -d "/var/tmp/pgsvc-base-$SUITE.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT

debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 ||
  { tail -20 "$ROOT.log" >&2; rm -f "$ROOT.log"; exit 1; }
rm -f "$ROOT.log"

# Make it look like the official slim image: deb822 sources with updates and
# security, no docs/man pages/translations, apt caches cleaned, no services
# started by package scripts.
rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$ROOT/etc/apt/apt.conf.d/docker-no-languages"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

tar -C "$ROOT" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
echo "base-image: imported $BASE_IMAGE"
