#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (tests/compat/test_ui_*.py), which drive it
# with Playwright (pinned in tests/requirements.txt) through executable_path: Playwright's own
# browser download is never used. Re-running is cheap: nothing happens when it is installed.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Chromium is not installed and this is not root: apt-get install chromium" >&2
  exit 1
fi
echo "browser-env: installing Debian's chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
