#!/bin/bash
# UDP benchmark without a TCP control channel (perf/udpBlast.js as load and
# sink), pasta-compatible programs interleaved (A B A B ...), each run in a
# fresh made host namespace (veth uplink going nowhere, like test/run.sh).
# Prints, per scenario and program, the median received Gbit/s and the median
# loss (% of datagrams sent that never arrived).
#
#   perf/udp.sh [-n REPS] [-t SECONDS] [-l SIZE] [-r GBPS] [-s "SCENARIO ..."] PROGRAM...
#
# -r paces the sender to GBPS (default: as fast as it can): loss at a given
# offered load, rather than the most that gets through.
#
# Scenarios:
#   udp_in_tap     host (its own address, not loopback) -> namespace, -u, through the tap
#   udp_in_splice  host loopback -> namespace, -u, spliced (no Layer 2)
#   udp_out_tap    namespace -> host loopback through the tap (via the gateway)
# PROGRAM is a pasta command line, e.g. /usr/bin/pasta, ./bin/pasta, or
# "env PASST_TS_UDP_BATCH=1 ./bin/pasta". The C pasta refuses to run as root:
# it runs as the user "bench" (useradd -m bench; chmod 666 /dev/net/tun).
# Run as root, after `npx tsc -p .`.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd); export ROOT  # hostns() runs in a fresh bash (declare -f)
BLAST="node $ROOT/dist/perf/udpBlast.js"

if [ "${1:-}" = "--one" ]; then
  # one run, inside the made namespace: --one SCENARIO PROGRAM SECONDS SIZE
  S=$2; PASTA=$3; T=$4; SIZE=$5; RATE=${6:-0}; AS=${AS-}
  OUT=$(mktemp)
  ready() { for _ in $(seq 150); do grep -q ready "$OUT" && return 0; sleep 0.1; done; return 1; }
  case $S in
  udp_in_tap|udp_in_splice)
    dst=192.0.2.2; [ "$S" = udp_in_splice ] && dst=127.0.0.1
    $AS $PASTA -f -q --config-net -u 5301 -- $BLAST recv :: 5301 $((T + 15)) > "$OUT" 2>/dev/null &
    p=$!
    ready || { kill $p; echo "0 100"; exit 0; }
    sleep 0.3
    snd=$($BLAST send $dst 5301 "$SIZE" "$T" "$RATE")
    wait $p ;;
  udp_out_tap)
    $BLAST recv 127.0.0.1 5301 $((T + 15)) > "$OUT" &
    p=$!
    ready || { kill $p; echo "0 100"; exit 0; }
    snd=$($AS $PASTA -f -q --config-net -- sh -c "sleep 0.5; $BLAST send 192.0.2.1 5301 $SIZE $T $RATE" 2>/dev/null | tail -1)
    wait $p ;;
  *) echo "unknown scenario $S" >&2; exit 2 ;;
  esac
  rcv=$(tail -1 "$OUT"); rm -f "$OUT"
  printf '%s\n%s\n' "${snd:-{\}}" "${rcv:-{\}}" | jq -s -r \
    '(.[1].gbps // 0) as $g | (.[0].sent // 0) as $s | (.[1].received // 0) as $r |
     "\(($g*100|floor)/100) \(if $s > 0 then ((1 - $r/$s)*1000|floor)/10 else 100 end)"'
  exit 0
fi

REPS=3; T=3; SIZE=16000; RATE=0; SCEN="udp_in_tap udp_in_splice udp_out_tap"
while getopts n:t:l:r:s: o; do case $o in n) REPS=$OPTARG;; t) T=$OPTARG;; l) SIZE=$OPTARG;; r) RATE=$OPTARG;; s) SCEN=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND - 1)); [ $# -gt 0 ] || set -- /usr/bin/pasta "$ROOT/bin/pasta"
ASB="setpriv --reuid bench --regid bench --init-groups"
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
hostns() {
  unshare -n sh -c 'sh "$1" && shift && exec "$@"' sh "$ROOT/test/scripts/host-uplink.sh" "$@"
}
echo "datagram size $SIZE bytes, offered load $( [ "$RATE" = 0 ] && echo unlimited || echo "$RATE Gbit/s"), $T s per run, median of $REPS (Gbit/s received, loss %)"
printf '%-16s' scenario; for P in "$@"; do printf ' %-26s' "$(echo "$P" | sed 's|.*/||')"; done; echo
for S in $SCEN; do
  declare -A G=() L=()
  for ((i = 0; i < REPS; i++)); do
    for P in "$@"; do
      case "$P" in */usr/bin/pasta*) as=$ASB;; *) as=${AS_ALL-};; esac
      read -r g l < <(AS="$as" timeout $((T + 60)) bash -c "$(declare -f hostns); hostns bash '$0' --one '$S' '$P' '$T' '$SIZE' '$RATE'" 2>/dev/null | tail -1)
      G[$P]+="${g:-0} "; L[$P]+="${l:-100} "
    done
  done
  printf '%-16s' "$S"
  for P in "$@"; do
    printf ' %-26s' "$(echo ${G[$P]} | tr ' ' '\n' | median) ($(echo ${L[$P]} | tr ' ' '\n' | median)%)"
  done
  echo
  unset G L
done
