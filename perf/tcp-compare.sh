#!/bin/bash
# TCP over the tap, side by side with another pasta (the project's benchmark
# for issue 4, the equivalent of
#   ../shared/bench/compare.sh -s "tcp_out_tap tcp_in_tap rr_tap" /usr/bin/pasta ./bin/pasta
# that runs on its own). Every run gets a fresh made host namespace (a veth
# uplink with documentation addresses that goes nowhere: nothing leaves the
# machine); the programs alternate (A B A B ...) so that machine drift hits
# them alike; each cell is the median of REPS runs.
#
#   perf/tcp-compare.sh [-n REPS] [-t SECONDS] [-s "SCENARIOS"] [-m "MTUS"] [PROGRAM...]
#
# Scenarios: tcp_out_tap (namespace → host loopback through the gateway
# address), tcp_in_tap (host → namespace on a -t port, non-loopback source),
# rr_tap (sockperf ping-pong latency, µs). MTUS: "default 1500" by default
# (default = pasta's 65520). Throughput cells read "Gbit/s (stalls)": stalls
# counts 1-second iperf3 intervals below 10 % of the run's mean (a stall the
# median hides). PROGRAMs default to /usr/bin/pasta ./bin/pasta. The C pasta
# refuses to run as root: it runs as the user "bench" (made here if missing).
# Needs iperf3, jq, sockperf. Run as root, on an otherwise quiet machine.
set -u
cd "$(dirname "$0")/.."
REPS=5; T=4; SCEN="tcp_out_tap tcp_in_tap rr_tap"; MTUS="default 1500"
while getopts n:t:s:m: o; do
  case $o in n) REPS=$OPTARG;; t) T=$OPTARG;; s) SCEN=$OPTARG;; m) MTUS=$OPTARG;; *) exit 2;; esac
done
shift $((OPTIND-1)); [ $# -gt 0 ] || set -- /usr/bin/pasta ./bin/pasta
[ "$(id -u)" = 0 ] || { echo "run as root (makes network namespaces)" >&2; exit 1; }
for p in iperf3 jq sockperf; do command -v $p >/dev/null || { echo "needs $p" >&2; exit 1; }; done
if ! id bench >/dev/null 2>&1; then useradd -m bench && chmod 666 /dev/net/tun; fi

# one scenario against one program inside a made host namespace; prints "value stalls"
one() { # SCENARIO PROGRAM MTU
  local as=""
  case "$2" in */usr/bin/pasta*|*/usr/bin/passt*) as="setpriv --reuid bench --regid bench --init-groups";; esac
  local mtu=""; [ "$3" = default ] || mtu="-m $3"
  timeout $((T + 40)) unshare -n bash -c '
    S=$1; P=$2; T=$3; MTU=$4; AS=$5
    sh test/scripts/host-uplink.sh
    pids=$(mktemp -d); trap "for f in $pids/*.pid; do [ -s \$f ] && kill \$(cat \$f) 2>/dev/null; done; rm -rf $pids" EXIT
    res() { jq -r "[.intervals[].sum.bits_per_second] as \$v | (\$v|add/length) as \$m |
      \"\((.end.sum_received.bits_per_second // 0)/1e9*100|floor/100) \([\$v[]|select(. < \$m/10)]|length)\""; }
    p() { $AS $P -f -q $MTU --config-net "$@"; }
    case $S in
    tcp_out_tap)
      iperf3 -s -D -1 -I $pids/s.pid -B 127.0.0.1 -p 5201; sleep 0.3
      p -- sh -c "iperf3 -J -c 192.0.2.1 -p 5201 -t $T" | res ;;
    tcp_in_tap)
      p -t 5202 -- sh -c "iperf3 -s -1 -p 5202 >/dev/null" & sleep 1.5
      iperf3 -J -c 192.0.2.2 -p 5202 -t $T | res; wait ;;
    rr_tap)
      sockperf sr --tcp -i 127.0.0.1 -p 11111 >/dev/null 2>&1 & s=$!; sleep 0.3
      p -- sh -c "sockperf pp --tcp -i 192.0.2.1 -p 11111 -t $T 2>&1" |
        sed -n "s/.*avg-latency=\([0-9.]*\).*/\1 0/p" | head -1
      kill $s ;;
    esac' sh "$1" "$2" "$T" "$mtu" "$as" 2>/dev/null | tail -1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }

printf '%-12s %-7s' scenario mtu; for P in "$@"; do printf ' %-18s' "$(basename "${P%% *}")"; done
[ $# -eq 2 ] && printf ' %s' 'ratio(2nd/1st)'; echo
for M in $MTUS; do
  for S in $SCEN; do
    declare -A V=() ST=()
    for ((i = 0; i < REPS; i++)); do
      for P in "$@"; do
        read -r v s < <(one "$S" "$P" "$M"; echo)
        V[$P]+="${v:-0} "; ST[$P]=$(( ${ST[$P]:-0} + ${s:-0} ))
      done
    done
    printf '%-12s %-7s' "$S" "$M"
    meds=()
    for P in "$@"; do
      m=$(echo ${V[$P]} | tr ' ' '\n' | median); meds+=("$m")
      if [ "$S" = rr_tap ]; then printf ' %-18s' "$m"; else printf ' %-18s' "$m (${ST[$P]})"; fi
    done
    [ $# -eq 2 ] && awk -v a="${meds[0]}" -v b="${meds[1]}" 'BEGIN { if (a > 0) printf " %.2f", b / a; else printf " -" }'
    echo
  done
done
