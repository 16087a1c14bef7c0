#!/usr/bin/env bash
# Sets up and starts ferrokube on this machine: installs the build and node dependencies
# (containerd, runc, the CNI plugins, nftables, busybox-static for the test image),
# builds the release binary, puts the busybox test image where the server imports it,
# and runs `ferrokube server` (embedded store, control plane and this machine as a node).
# Data lives in $FERROKUBE_DATA_DIR (default: .ferrokube/ in this checkout).
# Extra arguments go to `ferrokube server` (e.g. --disable-agent for no node).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/packages.sh
ensure_packages protobuf-compiler libprotobuf-dev containerd runc containernetworking-plugins nftables iproute2 conntrack busybox-static
cargo build --release -p ferrokube
data_dir="${FERROKUBE_DATA_DIR:-$PWD/.ferrokube}"
images="$data_dir/agent/images"
if [ ! -f "$images/busybox.tar" ]; then
    mkdir -p "$images"
    FERROKUBE=target/release/ferrokube bash hack/images/busybox.sh -o "$images/busybox.tar"
fi
echo ">>> starting: target/release/ferrokube server --data-dir $data_dir $*"
exec target/release/ferrokube server --data-dir "$data_dir" "$@"
