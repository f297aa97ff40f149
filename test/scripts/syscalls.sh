#!/bin/bash
# Records the system calls pasta, passt and slirp4netns-ts make once they
# are isolated, to derive (and re-check) the seccomp allow-list of
# src/main/seccompPolicy.ts. As root:
#
#   test/scripts/syscalls.sh OUT [test/run.sh arguments...]   the test suite (or the files given)
#   BENCH=1 test/scripts/syscalls.sh OUT [compare.sh options] /work/shared/bench/compare.sh's scenarios
#
# Every run of bin/pasta, bin/passt and bin/slirp4netns-ts (the symlinks'
# target is replaced by a wrapper, in a mount namespace of this script's
# own) goes through `strace -f -ttt -qq`, one trace file per run in
# OUT/raw; test/scripts/syscalls-summary.js then counts, per system call,
# what the threads did after their isolation step (each thread's
# prctl(PR_SET_NO_NEW_PRIVS) of isolate.cc, or, for threads and processes
# made afterwards, everything) and prints the calls the policy lacks. Set
# PASST_TS_SECCOMP_LOG=1 (passed on) to run with the filter in log mode: a
# call it lacks is then also in the kernel log (type=1326, dmesg).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(realpath -m "${1:?usage: syscalls.sh OUT [arguments...]}"); shift
if [ "${SYSCALLS_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "syscalls.sh: run as root" >&2; exit 1; }
  # test/run.sh mounts a tmpfs of its own on /tmp
  case "$OUT" in /tmp|/tmp/*) echo "syscalls.sh: OUT must not be under /tmp (e.g. /var/tmp/syscalls)" >&2; exit 1;; esac
  rm -rf "$OUT"; mkdir -p "$OUT/raw" "$OUT/entry"
  chmod 1777 "$OUT/raw"   # the unprivileged tests' runs write there too
  for m in pasta passt slirp4netns-ts; do
    printf "require('%s/dist/src/main/index.js').main();\n" "$ROOT" > "$OUT/entry/$m"
  done
  cat > "$OUT/wrapper" <<W
#!/bin/sh
m=\$(basename "\$0")
exec strace -f -ttt -qq -o "$OUT/raw/\$m.\$\$" "$(command -v node)" "$OUT/entry/\$m" "\$@"
W
  chmod 755 "$OUT/wrapper"; chmod -R a+rX "$OUT/entry"
  exec unshare --mount --propagation private env SYSCALLS_INNER=1 "$0" "$OUT" "$@"
fi
mount --bind "$OUT/wrapper" "$ROOT/bin/passt-ts.js"
start=$(date +%s)
klog=$(dmesg | wc -l)
if [ "${BENCH:-}" = 1 ]; then
  mkdir -p "$OUT/bin"; for m in pasta; do ln -sf "$ROOT/bin/$m" "$OUT/bin/$m"; done
  /work/shared/bench/compare.sh "$@" "$OUT/bin/pasta" > "$OUT/bench.txt" 2>&1 || true
else
  "$ROOT/test/run.sh" "$@" > "$OUT/tests.txt" 2>&1 || true
fi
umount "$ROOT/bin/passt-ts.js"
echo "syscalls.sh: $(ls "$OUT/raw" | wc -l) traced runs in $(( $(date +%s) - start )) s" >&2
node "$ROOT/test/scripts/syscalls-summary.js" "$OUT/raw" | tee "$OUT/summary.txt"
# what the filter lacked (log mode) or killed, as the kernel logged it
# (printk's rate limit may drop some lines of a burst)
dmesg | tail -n +$((klog + 1)) | grep 'type=1326' > "$OUT/kernel.txt" || true
hdr=/usr/include/x86_64-linux-gnu/asm/unistd_64.h
echo "# kernel log (type=1326): $(wc -l < "$OUT/kernel.txt") lines" | tee -a "$OUT/summary.txt"
for nr in $(grep -o 'syscall=[0-9]*' "$OUT/kernel.txt" | cut -d= -f2 | sort -n | uniq); do
  echo "#   syscall $nr ($(awk -v n="$nr" '$1 == "#define" && $3 == n { sub("__NR_", "", $2); print $2 }' "$hdr")): $(grep -c "syscall=$nr " "$OUT/kernel.txt") lines"
done | tee -a "$OUT/summary.txt"
