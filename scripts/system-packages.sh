#!/usr/bin/env bash
# Install the system programs the tutorial runs for real, when they are missing.
# Debian/Ubuntu: apt-get (as root, or through sudo). Elsewhere: print what to install.
set -euo pipefail

# program on PATH -> Debian package that provides it
declare -A NEEDED=(
  [dot]=graphviz
  [nginx]=nginx-light
  [redis-server]=redis-server
  [pg_ctl]=postgresql
  [chromium]=chromium
  [node]=nodejs
  [npm]=npm
)

have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  # pg_ctl lives in a versioned directory on Debian.
  [[ "$1" == pg_ctl ]] && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && return 0
  [[ -x "/usr/sbin/$1" ]] && return 0
  return 1
}

missing=()
for program in "${!NEEDED[@]}"; do
  have "$program" || missing+=("${NEEDED[$program]}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "Missing system packages: ${missing[*]}" >&2
      echo "Run as root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "Installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    "${missing[@]}" >/dev/null
  # Debian starts these as services; the tutorial starts its own on free ports.
  for service in nginx redis-server postgresql; do
    $SUDO service "$service" stop >/dev/null 2>&1 || true
  done
else
  cat >&2 <<MSG
This machine has no apt-get. Install these by hand, then run make again:
  ${missing[*]}
  macOS (Homebrew): brew install graphviz nginx redis postgresql@16 node && brew install --cask chromium
  Fedora:           dnf install graphviz nginx redis postgresql-server chromium nodejs npm
The browser tests look for Chromium at /usr/bin/chromium (set CHROMIUM=/path to override).
MSG
  exit 1
fi
