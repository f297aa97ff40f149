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
sh test/scripts/host-uplink.sh
sysctl -q -w net.ipv4.ping_group_range="0 2147483647"
exec node dist/perf/guest.bench.js "$@"
