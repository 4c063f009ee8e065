#!/usr/bin/env bash
# @file Checks the README's first command on a fresh Debian machine: builds a clean Debian bookworm
# root with debootstrap (minbase: no Vulkan loader, no driver, no chromium), copies in this
# machine's Node (binary and npm) and the repository's committed tree (`git archive HEAD`, as a
# fresh clone has it), then runs `npm ci && npm run demo` inside it as root (chroot with /proc,
# /sys, /dev mounted; the network is the host's, for npm and apt). Passes when the demo prints a
# held-out accuracy of at least MIN_ACCURACY (the README's 95.25%, less a little run-to-run noise).
# Needs root, debootstrap (installed with apt-get when missing) and about 2 GB in WORK.
#
#   sudo bash scripts/fresh-machine-check.sh            # WORK=/tmp/adjoint-fresh
#   WORK=/var/tmp/x KEEP=1 bash scripts/fresh-machine-check.sh
#
# The debootstrapped base is kept in WORK/base and reused; each run starts from a fresh copy of it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/adjoint-fresh}
MIN_ACCURACY=${MIN_ACCURACY:-94.5}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

[ "$(id -u)" = 0 ] || { echo "fresh-machine-check: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap </dev/null
mkdir -p "$WORK"
if [ ! -d "$WORK/base" ]; then
  echo "== debootstrap bookworm (minbase) into $WORK/base"
  rm -rf "$WORK/base.tmp"
  debootstrap --variant=minbase bookworm "$WORK/base.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { echo "fresh-machine-check: debootstrap failed, see $WORK/debootstrap.log" >&2; exit 1; }
  mv "$WORK/base.tmp" "$WORK/base"
fi

root="$WORK/root"
cleanup() {
  for m in dev/pts dev sys proc; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done
  [ -n "${KEEP:-}" ] || rm -rf "$root"
}
trap cleanup EXIT
cleanup
echo "== fresh root $root"
cp -a "$WORK/base" "$root"

# Node from this machine: the binary and npm (a fresh machine's `apt-get install nodejs` is Node 18
# on bookworm, below this package's engines; the README's readers bring their own Node 20+).
node_bin=$(command -v node)
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
cp "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$(readlink -f "$npm_dir")" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
# This machine's network settings: DNS, its apt sources and mirror checks, its CA bundle (Node's
# and npm's, where a proxy needs one). Nothing else of the host goes in.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp -a /etc/apt/sources.list.d/. "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
{ apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' || true; } >"$root/etc/apt/apt.conf.d/99host-mirror"
ca_env=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  mkdir -p "$root/usr/local/share/adjoint-check"
  cp "$NODE_EXTRA_CA_CERTS" "$root/usr/local/share/adjoint-check/ca.crt"
  ca_env=(NODE_EXTRA_CA_CERTS=/usr/local/share/adjoint-check/ca.crt npm_config_cafile=/usr/local/share/adjoint-check/ca.crt)
fi

# The repository as a fresh clone has it: the committed tree only.
mkdir -p "$root/root/adjoint"
git -C "$repo" archive HEAD | tar -x -C "$root/root/adjoint"
echo "   tree: $(git -C "$repo" rev-parse --short HEAD)"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

# Shown so the log proves the starting point: no Vulkan loader, no driver.
chroot "$root" /bin/bash -c 'ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 /usr/lib/chromium 2>&1 | sed "s/^/   before: /"; true'

echo "== npm ci && npm run demo (inside the fresh root)"
log="$WORK/demo.log"
set +e
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "${ca_env[@]}" \
  /bin/bash -c 'cd /root/adjoint && npm ci --no-audit --no-fund && npm run demo' </dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
acc=$(sed -n 's/^held-out accuracy: \([0-9.]*\)%.*/\1/p' "$log" | tail -1)
if [ "$rc" != 0 ] || [ -z "$acc" ]; then
  echo "fresh-machine-check: FAILED (exit $rc, no accuracy line); log in $log"
  exit 1
fi
if ! awk -v a="$acc" -v m="$MIN_ACCURACY" 'BEGIN { exit !(a >= m) }'; then
  echo "fresh-machine-check: FAILED: held-out accuracy $acc% < $MIN_ACCURACY%; log in $log"
  exit 1
fi
echo "fresh-machine-check: passed: held-out accuracy $acc% on a fresh bookworm root; log in $log"
