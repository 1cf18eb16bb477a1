#!/bin/sh
# Install the Chromium that the report-site browser tests drive (tests/test_site.py, via Playwright with
# executable_path=/usr/bin/chromium; `playwright install` is not used). Debian/Ubuntu, as root.
# Idempotent: does nothing when /usr/bin/chromium exists.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "install-browser: /usr/bin/chromium already present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')); nothing to do"
    exit 0
fi
echo "install-browser: /usr/bin/chromium not found; installing the chromium package with apt-get"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
