#!/usr/bin/env bash
# Make sure Node.js 20.19+ and npm are there for the front end (Vite 8 needs 20.19 or newer).
# Installs Debian's nodejs and npm when node is missing; prints node's version.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "ensure-node: installing nodejs and npm from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
fi
version="$(node --version)"
if ! node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1);'; then
  echo "The front end needs Node.js 20.19 or newer; this machine has ${version}." >&2
  echo "Install a newer nodejs (Debian 13's package, or NodeSource's for Debian 12)." >&2
  exit 1
fi
echo "$version"
