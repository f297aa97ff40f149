#!/bin/bash
# Memory of one idle instance (issue 16, "Memory per instance"): every
# container runs its own pasta, so an idle pasta's private memory is paid
# once per container. For each PROGRAM, RUNS times (the programs interleaved,
# each run in a fresh made host namespace, ../shared/hostns.sh), starts an
# idle instance, waits until it is ready plus WAIT seconds, and reads:
#   Pss_Anon  /proc/PID/smaps_rollup: the anonymous memory the process owns
#             (its threads share one address space: one reading covers all)
#   RSS       VmRSS of /proc/PID/status (includes the shared libraries)
#   threads   Threads of /proc/PID/status
# and prints the median of each (MB = 1024 kB).
#
#   perf/memory.sh [-n RUNS] [-w WAIT] [-t SECONDS] [-u] [PROGRAM...]
#
# -t: before waiting, move TCP data for SECONDS each way (iperf3, namespace
# -> host loopback through the tap, then reversed; pasta only): what an
# instance keeps after it was used (grown heaps, touched rings).
# -u: before waiting, one UDP datagram from the namespace to the gateway
# (pasta only): an instance whose UDP worker, started on demand, runs.
#
# A pasta (the program's name contains "pasta") is attached to a network
# namespace made beforehand (`unshare -n sleep`; `unshare -Urn sleep` as the
# user bench) with `--config-net -P PIDFILE PID`: it daemonises like under
# Podman and the PID file names the daemon. A passt (the name contains
# "passt") runs in socket mode, no client: `-P PIDFILE -s SOCKET`.
# PROGRAM is a command line: "env PASST_TS_X=1 ./bin/pasta" measures a
# variant. Default: this tree's pasta and passt, and the C pasta and passt of
# /opt/passt-ref when built there. The C programs refuse to run as root: they
# run as the user "bench" (useradd -m bench; chmod 666 /dev/net/tun).
# Not a test: run by hand, as root, after `npx tsc -p .`.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
HOSTNS=${HOSTNS:-$(cd "$ROOT/.." && pwd)/shared/hostns.sh}
[ -x "$HOSTNS" ] || HOSTNS=/work/shared/hostns.sh
ASB="setpriv --reuid bench --regid bench --init-groups"

if [ "${1:-}" = "--one" ]; then
  # one run, inside the made namespace: --one PROGRAM WAIT TRAFFIC UDP; prints "PSS_ANON_KB RSS_KB THREADS"
  P=$2; WAIT=$3; TRAFFIC=${4:-0}; UDP=${5:-0}; AS=${AS-}
  base=$(basename "${P##* }")
  d=$(mktemp -d); chmod 777 "$d"
  ns=
  cleanup() {
    for f in "$d/pid" "$d/iperf.pid"; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
    [ -n "$ns" ] && kill "$ns" 2>/dev/null
    wait 2>/dev/null; rm -rf "$d"
  }
  trap cleanup EXIT
  case $base in
  *pasta*)
    if [ -n "$AS" ]; then $AS unshare -Urn sleep 600 & else unshare -n sleep 600 & fi
    ns=$!
    for _ in $(seq 50); do
      [ "$(readlink /proc/$ns/ns/net 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] && break; sleep 0.05
    done
    $AS $P -q --config-net -P "$d/pid" "$ns" </dev/null >/dev/null 2>"$d/err" ;;
  *passt*)
    $AS $P -q -P "$d/pid" -s "$d/sock" </dev/null >/dev/null 2>"$d/err" ;;
  *) echo "$base: neither pasta nor passt" >&2; exit 2 ;;
  esac
  # the foreground returns once the daemon is ready (and the PID file written)
  for _ in $(seq 100); do [ -s "$d/pid" ] && break; sleep 0.1; done
  [ -s "$d/pid" ] || { echo "$P did not start: $(head -c 300 "$d/err")" >&2; exit 1; }
  if [ "$TRAFFIC" != 0 ] && [ -n "$ns" ]; then
    iperf3 -s -D -1 -I "$d/iperf.pid" -B 127.0.0.1 -p 5201 && sleep 0.3
    nsenter -t "$ns" -n iperf3 -c 192.0.2.1 -p 5201 -t "$TRAFFIC" >/dev/null 2>&1
    iperf3 -s -D -1 -I "$d/iperf.pid" -B 127.0.0.1 -p 5201 && sleep 0.3
    nsenter -t "$ns" -n iperf3 -c 192.0.2.1 -p 5201 -t "$TRAFFIC" -R >/dev/null 2>&1
  fi
  if [ "$UDP" != 0 ] && [ -n "$ns" ]; then
    nsenter -t "$ns" -n bash -c 'echo x > /dev/udp/192.0.2.1/9' 2>/dev/null
  fi
  sleep "$WAIT"
  pid=$(cat "$d/pid")
  pss=$(awk '/^Pss_Anon:/ { print $2 }' "/proc/$pid/smaps_rollup")
  read -r rss thr < <(awk '/^VmRSS:/ { r = $2 } /^Threads:/ { t = $2 } END { print r, t }' "/proc/$pid/status")
  echo "${pss:-0} ${rss:-0} ${thr:-0}"
  exit 0
fi

RUNS=3; WAIT=2; TRAFFIC=0; UDP=0
while getopts n:w:t:u o; do case $o in n) RUNS=$OPTARG;; w) WAIT=$OPTARG;; t) TRAFFIC=$OPTARG;; u) UDP=1;; *) exit 2;; esac; done
shift $((OPTIND - 1))
if [ $# -eq 0 ]; then
  set -- "$ROOT/bin/pasta"
  [ -x /opt/passt-ref/pasta ] && set -- "$@" /opt/passt-ref/pasta
  set -- "$@" "$ROOT/bin/passt"
  [ -x /opt/passt-ref/passt ] && set -- "$@" /opt/passt-ref/passt
fi
[ -f "$ROOT/dist/src/main/index.js" ] || (cd "$ROOT" && npx tsc -p tsconfig.json)
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "-"; else print a[int((NR+1)/2)]}'; }
declare -A PSS=() RSS=() THR=()
for ((i = 0; i < RUNS; i++)); do
  for P in "$@"; do
    case "$P" in */usr/bin/pasta*|*/usr/bin/passt*|*/opt/passt-ref/*) as=$ASB;; *) as=${AS_ALL-};; esac
    read -r p r t < <(AS="$as" timeout $((60 + 2 * TRAFFIC)) "$HOSTNS" bash "$HERE/memory.sh" --one "$P" "$WAIT" "$TRAFFIC" "$UDP")
    PSS[$P]+="${p:-0} "; RSS[$P]+="${r:-0} "; THR[$P]+="${t:-0} "
  done
done
what="idle instance, ready"; [ "$TRAFFIC" != 0 ] && what="$what, ${TRAFFIC} s of TCP each way"
[ "$UDP" != 0 ] && what="$what, one UDP datagram"
echo "$what + ${WAIT} s, median of $RUNS runs"
printf '%-40s %12s %10s %8s\n' program 'Pss_Anon MB' 'RSS MB' threads
mb() { awk '{ printf "%.1f", $1 / 1024 }'; }
for P in "$@"; do
  name=$P; [ ${#name} -gt 40 ] && name=...${name: -37}
  printf '%-40s %12s %10s %8s\n' "$name" \
    "$(echo ${PSS[$P]} | tr ' ' '\n' | median | mb)" \
    "$(echo ${RSS[$P]} | tr ' ' '\n' | median | mb)" \
    "$(echo ${THR[$P]} | tr ' ' '\n' | median)"
done
