#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit tests, the storage conformance
# suite against the embedded store and against real etcd (started by the tests), the
# 3-member etcd failover tests, the SIGKILL crash test, the CLI tests, the real kubectl
# and curl against the API server, the official Python client (in a venv under
# target/), and a quick smoke run of the storage benchmark. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib/packages.sh
ensure_packages etcd-server etcd-client protobuf-compiler libprotobuf-dev curl openssl nftables iptables iproute2 conntrack containerd runc containernetworking-plugins busybox-static dnsmasq-base nginx-light libnginx-mod-stream
export PATH="/usr/bin:$PATH" # Debian's etcd

echo ">>> cargo fmt --check"
cargo fmt --all --check
echo ">>> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo ">>> tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --profile ci
else
    cargo test --workspace
fi

echo ">>> the official Python client against ferrokube server"
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check kubernetes pytest
FERROKUBE_BIN="$PWD/target/debug/ferrokube" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python

echo ">>> benchmarks (quick smoke runs; full runs: see bench/*/README.md)"
cargo run -q -p ferrokube-bench-storage -- --quick
cargo run -q -p ferrokube-bench-apiserver -- --quick
# The control-plane benchmarks drive the ferrokube binary next to them (debug here).
cargo build -q -p ferrokube
cargo run -q -p ferrokube-bench-scheduler -- --quick
cargo run -q -p ferrokube-bench-controllers -- --quick
cargo run -q -p ferrokube-bench-node -- --quick
# ferrokube lb against nginx's stream proxy (nginx-light, libnginx-mod-stream), same config.
cargo run -q -p ferrokube-bench-lb -- --quick
cargo run -q -p ferrokube-bench-proxy -- --quick
# The cluster DNS server in-process; dnsmasq (dnsmasq-base) answers the same names as its peer.
cargo run -q -p ferrokube-bench-dns -- --quick
