#!/bin/bash
# passt CPU seconds per GB with a real guest, this implementation against the
# C passt (perf/guest.bench.ts). Run as root; makes its own network namespace
# playing the host (as test/run.sh does), so no packet leaves the machine.
#   perf/guest-bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PASST_TS_BENCH_NS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "perf/guest-bench.sh: run as root" >&2; exit 1; }
  npx tsc -p tsconfig.json
  test/guest/build.sh > /dev/null
  exec unshare --net --fork env PASST_TS_BENCH_NS=1 "$0" "$@"
fi
ip link set lo up
ip link add eth0 type veth peer name uplink0
ip link set uplink0 up
ip link set eth0 up mtu 1500
ip addr add 192.0.2.2/24 dev eth0
ip route add default via 192.0.2.1
ip -6 addr add 2001:db8::2/64 dev eth0 nodad
ip -6 route add default via 2001:db8::1
sysctl -q -w net.ipv4.ping_group_range="0 2147483647"
exec node dist/perf/guest.bench.js "$@"
