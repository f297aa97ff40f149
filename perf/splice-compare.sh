#!/bin/bash
# Spliced-path benchmark against the C pasta (issue 6): the tcp_out_splice,
# tcp_in_splice and rr_splice scenarios of ../shared/bench/compare.sh, the
# programs interleaved, medians of REPS runs (Gbit/s; rr_splice: average
# latency in microseconds). Goal: >= 0.8x the C pasta's throughput and
# <= 1.3x its latency. Not a test: run by hand, as root.
#   perf/splice-compare.sh [-n REPS] [-t SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-$(cd .. && pwd)/shared/bench}
[ -x "$BENCH/compare.sh" ] || BENCH=/work/shared/bench
[ -f dist/src/main/index.js ] || npx tsc -p tsconfig.json
exec bash "$BENCH/compare.sh" "$@" -s "tcp_out_splice tcp_in_splice rr_splice" /usr/bin/pasta "$PWD/bin/pasta"
