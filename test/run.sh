#!/bin/bash
# The project's test command (README.md): runs every test inside a network
# and mount namespace made here, which plays the host: lo, and a veth uplink
# "eth0" with documentation addresses (192.0.2.2/24 via 192.0.2.1,
# 2001:db8::2/64 via 2001:db8::1) whose far end goes nowhere. Nothing a test
# does can reach the machine's real network, and /etc/resolv.conf is replaced
# by a stand-in (no resolver of the machine is ever used).
#
#   test/run.sh [ava arguments...]     e.g. test/run.sh dist/test/e2e/lifecycle.test.js
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${PASST_TS_TEST_NS:-}" != "1" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test/run.sh: run as root (it makes network namespaces; CI runs as root)" >&2
    exit 1
  fi
  [ -f dist/src/main/index.js ] || npx tsc -p tsconfig.json
  # the real-guest tests' image (cached; needs the package mirror, so before unsharing)
  if command -v qemu-system-x86_64 >/dev/null && [ -f dist/test/guest/cpio.js ]; then
    test/guest/build.sh > /tmp/passt-ts-guest-build.log 2>&1 ||
      echo "test/run.sh: guest image build failed (see /tmp/passt-ts-guest-build.log)" >&2
  fi
  exec unshare --net --mount --uts --fork env PASST_TS_TEST_NS=1 "$0" "$@"
fi

# --- inside the made host namespace ---
hostname passt-ts-test
sh test/scripts/host-uplink.sh
sysctl -q -w net.ipv4.ping_group_range="0 2147483647"
# let the veth's link-local address leave DAD before tests read it
for i in $(seq 50); do ip -6 addr show dev eth0 scope link | grep -q tentative || break; sleep 0.1; done

# a private /tmp: what the tests write there (files, sockets, copies for the
# unprivileged user) goes away with this namespace
mount -t tmpfs -o mode=1777,size=4g passt-ts-test-tmp /tmp

resolv=$(mktemp)
printf 'nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.test\n' > "$resolv"
chmod 644 "$resolv"   # readable by the unprivileged users of the tests, as a real one is
mount --bind "$resolv" /etc/resolv.conf
mkdir -p /run/netns

exec npx ava "$@"
