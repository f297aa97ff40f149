#!/bin/bash
# Hostile-load report (issue 13): how much an established TCP connection
# through pasta slows down while the namespace and the host flood it, all
# floods at once and each alone. (The fuzzing figures come from
# test/fuzz/long-run.sh.)
#
# Usage (as root, from the repository, after npm ci): perf/hostile.sh [RUNS]
#
# Each run is test/e2e/load.test.ts's flood scenario (its own namespaces,
# nothing leaves the machine): 100 000 SYNs namespace -> host, 20 000
# connections host -> forwarded port (each reset at once), 100 000 UDP
# datagrams to 2000 ports, 50 000 pings. The figure is the time to echo
# 16 MiB through pasta's tap during the floods over the best of two
# unloaded rounds just before ("slowdown"); the flood generators share the
# machine's cores with pasta, so the load average is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
TEST=dist/test/e2e/load.test.js
[ -f "$TEST" ] || { echo "build first (npm ci)" >&2; exit 1; }

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# scenario name, then SYNS CONNECTS UDP PINGS
scenario() {
  local name=$1 syns=$2 conns=$3 udps=$4 pings=$5 i out
  local slow=() shed=() ok=0
  for i in $(seq 1 "$RUNS"); do
    out=$(PASST_TS_FLOOD_SYNS=$syns PASST_TS_FLOOD_CONNECTS=$conns PASST_TS_FLOOD_UDP=$udps PASST_TS_FLOOD_PINGS=$pings \
      test/run.sh "$TEST" --match '*floods*' 2>&1 || true)
    if grep -q '1 test passed' <<<"$out"; then ok=$((ok + 1)); else
      # keep what a failed run said
      printf '%s\n' "$out" >"${TMPDIR:-/tmp}/hostile-${syns}-${conns}-${udps}-${pings}-$i.log"
      echo "failed run kept in ${TMPDIR:-/tmp}/hostile-${syns}-${conns}-${udps}-${pings}-$i.log" >&2
    fi
    slow+=("$(grep -o 'slowdown during the floods: [0-9.]*' <<<"$out" | grep -o '[0-9.]*$' || true)")
    shed+=("$(grep -o 'SYNs shed: [0-9]*' <<<"$out" | grep -o '[0-9]*$' || true)")
  done
  printf '%-28s %6s %8s  %-40s %6s %s\n' "$name" "$(printf '%s\n' "${slow[@]}" | grep . | median)" \
    "$(printf '%s\n' "${shed[@]}" | grep . | median)" "$(printf '%s ' "${slow[@]}")" "$ok/$RUNS" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}

echo "# hostile load, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $RUNS runs per scenario"
printf '%-28s %6s %8s  %-40s %6s %s\n' scenario median "SYN shed" "slowdown per run (x)" passed "load avg"
scenario "all floods at once" 100000 20000 100000 50000
scenario "SYN flood ns -> host" 100000 0 0 0
scenario "connections host -> port" 0 20000 0 0
scenario "UDP to 2000 ports" 0 0 100000 0
scenario "ping flood" 0 0 0 50000
scenario "none (noise floor)" 0 0 0 0

