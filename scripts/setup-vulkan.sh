#!/usr/bin/env bash
# @file Installs what WebGPU needs on a Debian machine with no GPU driver: the Vulkan loader
# (libvulkan1) and a Vulkan driver Dawn accepts (SwiftShader, shipped by Debian's `chromium`
# package). Idempotent and non-interactive: does nothing when a loader and a driver are present,
# runs apt-get as root (or through `sudo -n`) otherwise. Used by `.ci/run` and by `npm run demo`
# (scripts/ensure-webgpu.mjs), so both install the same thing. Exit 0 when the loader and a
# driver are present at the end, 1 otherwise (with one line on stderr saying what failed).
#
#   bash scripts/setup-vulkan.sh            install what is missing
#   bash scripts/setup-vulkan.sh --check    install nothing; exit 0 if present, 1 if not
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive

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

if have_loader && have_icd; then
  echo "setup-vulkan: Vulkan loader and driver present, nothing to install"
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

echo "setup-vulkan: installing ${PACKAGES[*]} (chromium ships SwiftShader, a Vulkan driver on the CPU)"
if ! { "${sudo_cmd[@]}" apt-get update </dev/null &&
       "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${PACKAGES[@]}" </dev/null; }; then
  echo "setup-vulkan: apt-get install ${PACKAGES[*]} failed" >&2
  exit 1
fi
if ! have_loader || ! have_icd; then
  echo "setup-vulkan: installed ${PACKAGES[*]} but no Vulkan loader and driver are present" >&2
  exit 1
fi
echo "setup-vulkan: done"
