#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (Playwright drives it;
# Playwright's own browser download is not used). Prints the binary's path.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
