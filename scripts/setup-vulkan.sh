#!/usr/bin/env bash
# @file Installs what WebGPU needs on a Debian machine with no GPU driver: the Vulkan loader
# (libvulkan1) and a Vulkan driver Dawn accepts (SwiftShader, shipped by Debian's `chromium`
# package). Idempotent and non-interactive: does nothing when a loader and a driver are present,
# runs apt-get as root (or through `sudo -n`) otherwise. Used by `.ci/run` and by `npm run demo`
# (scripts/ensure-webgpu.mjs), so both install the same thing. Exit 0 when the loader and a
# driver are present at the end, 1 otherwise (with one line on stderr saying what failed).
# With --lavapipe it also installs Mesa >= 25's lavapipe, the second CPU adapter CI tests on
# (Dawn refuses bookworm's Mesa 22.3; bookworm-backports has 25.0.7, added as an apt source with
# the URI and keyring of the machine's own Debian source unless a source lists it already).
#
#   bash scripts/setup-vulkan.sh              install what is missing
#   bash scripts/setup-vulkan.sh --lavapipe   the same, and lavapipe (what .ci/run does)
#   bash scripts/setup-vulkan.sh --check      install nothing; exit 0 if present, 1 if not
#   APT_ETC=/tmp/x bash scripts/setup-vulkan.sh --print-backports-source
#                                             the source-list logic alone, on a copy of /etc/apt
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
APT_ETC=${APT_ETC:-/etc/apt}

PACKAGES=(chromium libvulkan1)

# Debian's lavapipe (mesa 22.3) is refused by Dawn, so an ICD manifest in /usr/share/vulkan/icd.d
# counts only when a GPU device node exists; the runtime falls back to chromium's SwiftShader.
have_loader() {
  # grep to /dev/null, not grep -q: an early exit would kill ldconfig and fail the pipe (pipefail).
  { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep 'libvulkan\.so\.1' >/dev/null
}
have_icd() {
  [ -f /usr/lib/chromium/vk_swiftshader_icd.json ] && return 0
  compgen -G '/dev/dri/renderD*' >/dev/null && compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null
}

# lavapipe's manifest, wherever the distribution put it (Debian: lvp_icd.json).
lavapipe_icd() {
  local f
  for f in /usr/share/vulkan/icd.d/lvp_icd*.json /etc/vulkan/icd.d/lvp_icd*.json; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}
# Dawn refuses bookworm's Mesa 22.3 and accepts 25 (verified); older than 25 counts as missing.
have_lavapipe() {
  lavapipe_icd >/dev/null || return 1
  command -v dpkg-query >/dev/null || return 0
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null) || return 0
  dpkg --compare-versions "$v" ge 25
}
codename() {
  (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
}
# Whether some apt source already lists suite $1 (one-line or deb822 format).
has_suite() {
  grep -Eqs "^[[:space:]]*(deb[[:space:]].*[[:space:]]$1([[:space:]]|\$)|Suites:.*[[:space:]]$1([[:space:]]|\$))" \
    "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources
}
# The URI and keyring of the machine's main Debian source (deb822 stanza whose Suites list $1),
# else of a one-line `deb URI $1 ...` entry, else Debian's own mirror; prints "URI KEYRING".
main_source() {
  local suite=$1 uri='' key=''
  local f
  for f in "$APT_ETC"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    read -r uri key < <(awk -v suite="$suite" '
      function flush() { if (hit && uri != "" && !done) { print uri, (key == "" ? "-" : key); done = 1 } hit = 0; uri = ""; key = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/ { uri = $2 }
      /^Signed-By:/ { key = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END { flush() }' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    uri=$(awk -v suite="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == suite) { u = $(i - 1); if (u !~ /^\[/) { print u; exit } } }' \
      "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list 2>/dev/null)
  fi
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  { [ -n "$key" ] && [ "$key" != - ]; } || key=/usr/share/keyrings/debian-archive-keyring.gpg
  echo "$uri $key"
}
# Adds the backports suite of the machine's release as a deb822 source, unless one lists it already.
add_backports() {
  local suite=$1 uri key
  if has_suite "$suite-backports"; then
    echo "== apt source for $suite-backports already present"
    return 0
  fi
  read -r uri key < <(main_source "$suite")
  echo "== adding $suite-backports from $uri as $APT_ETC/sources.list.d/adjoint-backports.sources"
  printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: %s\n' "$uri" "$suite" "$key" |
    "${sudo_cmd[@]}" tee "$APT_ETC/sources.list.d/adjoint-backports.sources" >/dev/null
}


if [ "${1:-}" = --print-backports-source ]; then
  sudo_cmd=()
  add_backports "$(codename)" && cat "$APT_ETC/sources.list.d/adjoint-backports.sources" 2>/dev/null
  exit $?
fi
want_lavapipe=false
[ "${1:-}" = --lavapipe ] && want_lavapipe=true

if have_loader && have_icd && { ! $want_lavapipe || have_lavapipe; }; then
  echo "setup-vulkan: Vulkan loader and driver$($want_lavapipe && printf ' and lavapipe') present, nothing to install"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "setup-vulkan: missing: $(have_loader || printf 'libvulkan1 ')$(have_icd || printf 'a Vulkan driver (chromium ships SwiftShader)')" >&2
  exit 1
fi

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    echo "setup-vulkan: not root and no password-less sudo: run \`sudo bash scripts/setup-vulkan.sh\`" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-vulkan: no apt-get: install the Vulkan loader and a Vulkan driver (e.g. SwiftShader or mesa's lavapipe) with your package manager" >&2
  exit 1
fi

if ! have_loader || ! have_icd; then
  echo "setup-vulkan: installing ${PACKAGES[*]} (chromium ships SwiftShader, a Vulkan driver on the CPU)"
  if ! { "${sudo_cmd[@]}" apt-get update </dev/null &&
         "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}" </dev/null; }; then
    echo "setup-vulkan: apt-get install ${PACKAGES[*]} failed" >&2
    exit 1
  fi
fi
if $want_lavapipe && ! have_lavapipe; then
  rel=$(codename)
  target=()
  # bookworm's own Mesa (22.3) is refused by Dawn; its backports suite has 25.0.7. Later
  # releases ship Mesa >= 25 in main.
  if [ "$rel" = bookworm ]; then add_backports "$rel"; target=(-t bookworm-backports); fi
  echo "setup-vulkan: installing lavapipe (mesa-vulkan-drivers ${target[*]})"
  if ! { "${sudo_cmd[@]}" apt-get update </dev/null &&
         "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${target[@]}" mesa-vulkan-drivers </dev/null; }; then
    echo "setup-vulkan: apt-get install mesa-vulkan-drivers failed" >&2
    exit 1
  fi
  if ! have_lavapipe; then
    echo "setup-vulkan: installed mesa-vulkan-drivers but no lavapipe of Mesa >= 25 is present" >&2
    exit 1
  fi
fi
if ! have_loader || ! have_icd; then
  echo "setup-vulkan: installed ${PACKAGES[*]} but no Vulkan loader and driver are present" >&2
  exit 1
fi
echo "setup-vulkan: done"
