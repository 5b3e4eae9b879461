#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/test_browser.py) when it is missing.
# Needs root (apt-get). Never `playwright install`: the tests drive /usr/bin/chromium directly.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null | head -n1) at $CHROMIUM"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_chromium: $CHROMIUM is missing and this is not root; run as root: apt-get update && apt-get install -y chromium" >&2
    exit 1
fi
echo "ensure_chromium: installing Debian's chromium (apt-get update && apt-get install -y chromium)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
test -x "$CHROMIUM" || { echo "ensure_chromium: apt-get finished but $CHROMIUM is still missing" >&2; exit 1; }
echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null | head -n1) at $CHROMIUM"
