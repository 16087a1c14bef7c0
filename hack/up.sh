#!/usr/bin/env bash
# Sets up and starts ferrokube on this machine: installs the build dependencies, builds
# the release binary, and runs `ferrokube server` on the embedded store.
# Data lives in $FERROKUBE_DATA_DIR (default: .ferrokube/ in this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/packages.sh
ensure_packages protobuf-compiler
cargo build --release -p ferrokube
data_dir="${FERROKUBE_DATA_DIR:-$PWD/.ferrokube}"
echo ">>> starting: target/release/ferrokube server --data-dir $data_dir"
exec target/release/ferrokube server --data-dir "$data_dir" "$@"
