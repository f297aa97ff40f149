#!/bin/bash
# Builds the root file system in which the Podman 5 tests run the real
# Podman that has `--network pasta` (Debian 13 "trixie": podman 5.x, crun,
# conmon, netavark, uidmap, catatonit). Debian 12's own podman (4.3.1)
# predates `--network pasta`; its glibc is too old for trixie's binaries,
# so they get a root of their own: debootstrap --variant=minbase, signed
# by the trixie key in Debian 12's debian-archive-keyring. passt (the C
# pasta) is deliberately NOT installed there: the only pasta podman can
# find is the one the test names in helper_binaries_dir, this tree's.
#   test/podman5/build.sh [ROOT]   default ROOT: $CACHE/root
# Reused while this script is unchanged (a stamp of it); prints ROOT.
# Env: CACHE (/var/cache/passt-ts-podman5), MIRROR (deb.debian.org).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-/var/cache/passt-ts-podman5}
ROOT=${1:-$CACHE/root}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
PKGS="podman,crun,conmon,netavark,aardvark-dns,uidmap,catatonit,libstdc++6,iproute2,procps"
stamp=$( (cat "$0"; echo "$SUITE $PKGS") | sha256sum | cut -d' ' -f1)

if [ -f "$ROOT/.passt-ts-stamp" ] && [ "$(cat "$ROOT/.passt-ts-stamp")" = "$stamp" ] \
   && [ -x "$ROOT/usr/bin/podman" ]; then
  echo "$ROOT"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is not installed" >&2; exit 1; }

rm -rf "$ROOT.new"
mkdir -p "$ROOT.new"
# keep the .debs: a rebuild after a change of this script downloads nothing twice
mkdir -p "$CACHE/debs"
debootstrap --variant=minbase --include="$PKGS" --cache-dir="$CACHE/debs" \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$SUITE" "$ROOT.new" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
  || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
# mount points the test binds over (node, the test's files, the host's users)
mkdir -p "$ROOT.new/usr/local/bin" "$ROOT.new/tmp" "$ROOT.new/run/user"
touch "$ROOT.new/usr/local/bin/node"
chmod 1777 "$ROOT.new/tmp"
rm -f "$ROOT.new/usr/bin/pasta" "$ROOT.new/usr/bin/passt"
rm -rf "$ROOT.new/var/cache/apt/archives"/*.deb
echo "$stamp" >"$ROOT.new/.passt-ts-stamp"
rm -rf "$ROOT"
mv "$ROOT.new" "$ROOT"
echo "$ROOT"
