#!/usr/bin/env bash
# Faultline store vs etcd: write throughput and latency, 3 replicas each on
# 127.0.0.1, fsync on. Installs etcd (Debian's etcd-server, 3.4) if missing,
# builds in release mode and runs the benchmark; arguments pass through
# (e.g. --seconds 5 --concurrency 1,16,64; --help lists them).
#
#   bash bench/store-vs-etcd.sh [ARGS...]
#
# Honours CARGO_TARGET_DIR (default: target/ at the workspace root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v etcd >/dev/null 2>&1; then
    echo "store-vs-etcd: installing etcd (Debian package etcd-server)" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    # No init system here to start the packaged service; should one start
    # anyway it listens on etcd's default ports (2379/2380), which the
    # benchmark does not use: it picks free ports of its own.
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y etcd-server
fi
etcd --version | head -1 >&2

cargo build --release -p faultline -p faultline-bench
target="${CARGO_TARGET_DIR:-target}"
# It finds `faultline` next to itself (override: --faultline PATH).
exec "$target/release/store-vs-etcd" "$@"
