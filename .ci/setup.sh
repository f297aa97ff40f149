#!/bin/bash
# Prepares a fresh Debian machine (as root) to build, run and test passt-ts:
# system packages, /dev/net/tun for unprivileged users, npm ci (which builds
# the native addon with node-gyp and compiles the TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PKGS="iproute2 util-linux passwd procps kmod ca-certificates make g++ python3
  socat jq iperf3 sockperf busybox-static ndisc6 isc-dhcp-client tcpdump tshark
  passt slirp4netns qemu-system-x86 xz-utils zstd podman uidmap catatonit rootlesskit
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon-system debootstrap"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends $missing
fi

# tap devices for everybody (pasta runs unprivileged under Podman)
if [ ! -c /dev/net/tun ]; then
  mkdir -p /dev/net
  mknod /dev/net/tun c 10 200
fi
chmod 666 /dev/net/tun
# unprivileged user namespaces (Debian kernels may gate them)
sysctl -q -w kernel.unprivileged_userns_clone=1 2>/dev/null || true
sysctl -q -w user.max_user_namespaces=15000 2>/dev/null || true

npm ci --no-audit --no-fund

# the real-guest tests' kernel and initramfs (test/guest/build.sh: Debian's
# cloud kernel and busybox-static via apt-get download, cached)
bash test/guest/build.sh

# the Podman 5 tests' root (test/podman5/build.sh: Debian 13's podman,
# which has --network pasta, by debootstrap; cached)
bash test/podman5/build.sh
