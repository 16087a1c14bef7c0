#!/usr/bin/env bash
# Builds the small local test image ferrokube.local/busybox:test from Debian's
# busybox-static, without a registry: a root filesystem with /bin/busybox and one
# /bin/<applet> symlink per applet, /etc/passwd and /etc/group (root, nobody), /tmp,
# /root and /www/index.html (made by `ferrokube images busybox-rootfs`, the same code the
# tests use), packed by `ferrokube images build` with `sh` as its command.
#
# Usage: hack/images/busybox.sh [-o FILE] [--import] [--address SOCK]
#   no arguments: writes target/images/busybox.tar
#   --import:     imports it into containerd's k8s.io namespace (default socket
#                 /run/containerd/containerd.sock), where the kubelet (CRI) sees it
# Uses $FERROKUBE if set, else builds target/debug/ferrokube. See docs/images.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/lib/packages.sh
ensure_packages busybox-static

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${FERROKUBE:-}" ]; then
    cargo build -q -p ferrokube
    FERROKUBE="$target/debug/ferrokube"
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
"$FERROKUBE" images busybox-rootfs "$rootfs" >/dev/null

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    mkdir -p "$target/images"
    args=(-o "$target/images/busybox.tar")
fi
exec "$FERROKUBE" images build --rootfs "$rootfs" --tag ferrokube.local/busybox:test --cmd sh "${args[@]}"
