#!/usr/bin/env bash
# lab-etcd-entrypoint: a single-member etcd, clients on 0.0.0.0:2379, data on
# the volume at /var/lib/etcd. Extra arguments go to etcd.
set -euo pipefail

NAME=${ETCD_MEMBER:-etcd}
HOST=${ETCD_ADVERTISE_HOST:-$(hostname)}
# etcd 3.4 refuses to start on architectures other than amd64/ppc64le unless told.
ETCD_UNSUPPORTED_ARCH=$(dpkg --print-architecture)
export ETCD_UNSUPPORTED_ARCH

exec etcd --name "$NAME" --data-dir /var/lib/etcd/data \
  --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls "http://$HOST:2379" \
  --listen-peer-urls http://0.0.0.0:2380 --initial-advertise-peer-urls "http://$HOST:2380" \
  --initial-cluster "$NAME=http://$HOST:2380" --initial-cluster-state new "$@"
