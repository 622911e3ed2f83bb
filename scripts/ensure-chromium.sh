#!/usr/bin/env bash
# Makes Debian's Chromium available for the browser tests (never a downloaded browser build).
# Installs it with apt-get when we are root and it is missing; otherwise says why the browser
# tests will skip (under CI=true they fail instead of skipping).
set -eu
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  exit 0
fi
echo "note: /usr/bin/chromium is missing and cannot be installed here (not root);" \
     "the browser tests will be skipped. Install Debian's 'chromium' package to run them."
