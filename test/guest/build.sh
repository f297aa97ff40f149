#!/bin/bash
# Builds the tiny Linux guest of passt-ts's real-guest tests (test/guest/).
#   test/guest/build.sh [OUTDIR]          default OUTDIR: $CACHE/image
# Writes OUTDIR/vmlinuz, OUTDIR/initramfs.img (gzip'd newc cpio, the same
# bytes for the same inputs) and OUTDIR/manifest.txt.
#
# Inputs, all Debian packages fetched with `apt-get download` into
# $CACHE/debs and unpacked with `dpkg -x` (nothing is installed):
# - the cloud kernel (KERNEL_PKG, default linux-image-cloud-amd64, resolved
#   to its versioned package), whose virtio-net and virtio-pci are modules:
#   they and their dependencies go into the initramfs;
# - busybox-static: the guest's shell and tools (ip, udhcpc, ping, nc, ...);
# - socat and iperf3 copied from the host with the libraries ldd reports
#   (byte-exact TCP/UDP transfers, and the benchmark).
# The guest's /init brings eth0 up, asks passt for a DHCP lease (unless
# "guest.nodhcp" is on the kernel command line), runs /guest/cmd (appended
# per run by runner.ts as a second cpio) between console markers and
# powers off. Already-built images are reused while the inputs are
# unchanged (a stamp of package names, this script and the host binaries).
# Env: CACHE (/var/cache/passt-ts-guest), KERNEL_PKG, SOURCE_DATE_EPOCH (0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${CACHE:-/var/cache/passt-ts-guest}
OUT=${1:-$CACHE/image}
KERNEL_PKG=${KERNEL_PKG:-linux-image-cloud-amd64}
EPOCH=${SOURCE_DATE_EPOCH:-0}
GUEST_BINS="socat iperf3"
export LC_ALL=C
mkdir -p "$CACHE/debs" "$OUT"

updated=
# fetch PKG: the cached .deb of PKG (downloaded if missing), printed.
fetch() {
  local f
  f=$(ls "$CACHE/debs/$1"_*.deb 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$f" ]; then
    if ! (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$1" >&2); then
      [ -z "$updated" ] || return 1
      apt-get -q update >&2; updated=1
      (cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$1" >&2)
    fi
    f=$(ls "$CACHE/debs/$1"_*.deb | sort -V | tail -1)
  fi
  echo "$f"
}
# unpacked PKG: dpkg -x once per .deb into $CACHE/root/PKG, printed.
unpacked() {
  local deb d; deb=$(fetch "$1"); d=$CACHE/root/$1
  if [ "$(cat "$d/.deb" 2>/dev/null)" != "$deb" ]; then
    rm -rf "$d"; mkdir -p "$d"; dpkg -x "$deb" "$d"; echo "$deb" > "$d/.deb"
  fi
  echo "$d"
}

# the versioned kernel package behind the meta package (offline: newest cached)
kpkg=$(apt-cache depends "$KERNEL_PKG" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1 || true)
if [ -z "$kpkg" ] && [ "$KERNEL_PKG" = linux-image-cloud-amd64 ]; then
  apt-get -q update >&2 && updated=1
  kpkg=$(apt-cache depends "$KERNEL_PKG" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1 || true)
fi
if [ -z "$kpkg" ]; then
  kpkg=$(ls "$CACHE/debs" | sed -n 's/^\(linux-image-[0-9][^_]*-cloud-amd64\)_.*/\1/p' | sort -V | tail -1 || true)
fi
kpkg=${kpkg:-$KERNEL_PKG}
K=$(unpacked "$kpkg")
B=$(unpacked busybox-static)

bins=()
for b in $GUEST_BINS; do bins+=("$(command -v "$b")") || { echo "build.sh: $b is not installed on the host" >&2; exit 1; }; done
stamp=$( { cat "$K/.deb" "$B/.deb" "$0" "$ROOT/dist/test/guest/cpio.js"; sha256sum "${bins[@]}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/manifest.txt" ] && grep -qx "stamp=$stamp" "$OUT/manifest.txt"; then
  cat "$OUT/manifest.txt"; exit 0
fi

vmlinuz=$(ls "$K"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$K/lib/modules/$kver
bb=$B/bin/busybox
if ldd "$bb" >/dev/null 2>&1; then echo "build.sh: $bb is not static" >&2; exit 1; fi

S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,guest,lib/modules}
cp "$bb" "$S/bin/busybox"
for a in $("$bb" --list-full); do [ -e "$S/$a" ] || ln -s /bin/busybox "$S/$a"; done

# kernel modules: dependencies first, built-in ones skipped
declare -A have=()
order=()
addmod() {
  local m=${1//-/_} f deps d
  [ -z "${have[$m]:-}" ] || return 0
  have[$m]=1
  grep -qE "/(${m}|${m//_/-})\.ko$" "$moddir/modules.builtin" 2>/dev/null && return 0
  f=$(cd "$moddir" && find kernel -regextype egrep -regex ".*/(${m}|${m//_/-})\.ko(\.xz|\.zst|\.gz)?" | head -1)
  [ -n "$f" ] || { echo "build.sh: module $m not in $moddir" >&2; exit 1; }
  case $f in
    *.xz) xz -dc "$moddir/$f" ;; *.zst) zstd -qdc "$moddir/$f" ;; *.gz) gzip -dc "$moddir/$f" ;; *) cat "$moddir/$f" ;;
  esac > "$S/lib/modules/$m.ko"
  deps=$(grep -a -o 'depends=[^[:cntrl:]]*' "$S/lib/modules/$m.ko" | head -1 | cut -d= -f2 | tr , ' ' || true)
  for d in $deps; do addmod "$d"; done
  order+=("$m")
}
for m in virtio_pci virtio_net; do addmod "$m"; done
# addmod lists every module after the ones it depends on: load in that order
printf '%s\n' "${order[@]}" > "$S/etc/modules"

for p in "${bins[@]}"; do
  cp -L "$p" "$S/usr/bin/"
  ldd "$p" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' | while read -r l; do
    mkdir -p "$S$(dirname "$l")"; [ -e "$S$l" ] || cp -L "$l" "$S$l"
  done
done

printf 'root:x:0:0:root:/root:/bin/sh\n' > "$S/etc/passwd"
printf 'root:x:0:\n' > "$S/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$S/etc/hosts"
: > "$S/etc/resolv.conf"

cat > "$S/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc hook: apply the lease (address, prefix, router, MTU)
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    echo "lease: $interface $ip/${mask:-24} router=$router mtu=${mtu:-none} dns=${dns:-none}" > /run/lease ;;
esac
exit 0
EOF

cat > "$S/init" <<'EOF'
#!/bin/sh
# passt-ts test guest: network up, run /guest/cmd between markers, power off
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
while read -r m; do insmod "/lib/modules/$m.ko" || echo "guest-init: insmod $m failed"; done < /etc/modules
ip link set lo up
i=0; while ! ip link show eth0 >/dev/null 2>&1 && [ $i -lt 100 ]; do usleep 20000; i=$((i+1)); done
ip link set eth0 up
case " $(cat /proc/cmdline) " in
  *" guest.nodhcp "*) ;;
  *) udhcpc -i eth0 -f -q -n -t 10 -T 1 -O mtu -s /etc/udhcpc.script >/run/udhcpc.log 2>&1 ||
       { echo "guest-init: DHCP failed"; cat /run/udhcpc.log; } ;;
esac
cat /run/lease 2>/dev/null
cd /guest
echo "@@GUEST-BEGIN uptime=$(cut -d' ' -f1 /proc/uptime)@@"
if [ -f /guest/cmd ]; then sh /guest/cmd; rc=$?; else echo "no /guest/cmd"; rc=127; fi
echo "@@GUEST-END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)@@"
sync; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger
EOF
chmod 755 "$S/init" "$S/etc/udhcpc.script"

node "$ROOT/dist/test/guest/cpio.js" "$S" "$OUT/initramfs.img.new" "$EPOCH"
mv "$OUT/initramfs.img.new" "$OUT/initramfs.img"
cp "$vmlinuz" "$OUT/vmlinuz"
{
  echo "kernel=$(basename "$(cat "$K/.deb")")"
  echo "kernel_version=$kver"
  echo "busybox=$(basename "$(cat "$B/.deb")")"
  echo "modules=${order[*]}"
  echo "guest_bins=$GUEST_BINS"
  echo "initramfs_sha256=$(sha256sum < "$OUT/initramfs.img" | cut -d' ' -f1)"
  echo "stamp=$stamp"
} > "$OUT/manifest.txt"
cat "$OUT/manifest.txt"
