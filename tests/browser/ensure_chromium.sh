#!/bin/sh
# Installs Debian's headless-capable Chromium for the browser tests when it is missing.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (CI runs as root).
set -eu
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_chromium: /usr/bin/chromium missing and not root; browser tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
