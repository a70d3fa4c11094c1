#!/usr/bin/env bash
# Installs the OpenID provider the OIDC tests run on loopback (tests/oidc: oauth2-mock-server,
# pinned by its package-lock.json) with the machine's Node.js and npm, installing Debian's
# nodejs and npm first where there is none. Re-running is cheap: nothing is installed when the
# lock file has not changed.
set -euo pipefail
cd "$(dirname "$0")/../tests/oidc"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "oidc-env: installing Node.js and npm from Debian's packages" >&2
  apt-get install -y -q nodejs npm >/dev/null
fi
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "oidc-env: installing tests/oidc/package-lock.json" >&2
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
