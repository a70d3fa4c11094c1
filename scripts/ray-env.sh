#!/usr/bin/env bash
# Creates (or refreshes) .venv-ray: Ray 2.60.0 with its dashboard, the cluster the pipelines'
# Ray executor tests (tests/compat/test_pipelines_ray.py) start a head node from.
# It is separate from .venv so that Ray's pins cannot move mlflow's.
# Re-running is cheap: nothing is installed when the requirements have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

req=tests/ray-requirements.txt
venv=.venv-ray
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)

if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "ray-env: installing $req into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$req"
echo "$want" > "$stamp"
