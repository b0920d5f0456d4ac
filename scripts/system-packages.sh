#!/usr/bin/env bash
# Install the system programs the tutorial runs for real, when they are missing.
# Debian/Ubuntu: apt-get (as root, or through sudo). Elsewhere: print what to install.
set -euo pipefail

# Which Debian packages are missing: the one lookup the tests and launchers use too
# (tutorial/components.py: $CHROMIUM / $PG_BIN, then PATH, then Debian's directories).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
# -P: the script's own directory (tutorial/, which holds a trace/) stays off sys.path.
mapfile -t missing < <("$PYTHON" -P "$HERE/../tutorial/components.py" missing)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

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
The tests look for chromium on PATH (set CHROMIUM=/path/to/chromium to override).
MSG
  exit 1
fi
