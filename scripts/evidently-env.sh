#!/usr/bin/env bash
# Creates (or refreshes) .venv-evidently: Evidently 0.7.23, the reference the drift agreement
# tests (tests/compat/test_drift_evidently.py) and bench/drift_bench.py compare against.
# It is separate from .venv because Evidently's pins conflict with mlflow's.
# Re-running is cheap: nothing is installed when the requirements have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

req=tests/evidently-requirements.txt
venv=.venv-evidently
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)

if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "evidently-env: installing $req into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$req"
echo "$want" > "$stamp"
