#!/usr/bin/env bash
# Creates (or refreshes) the project-local Python environment in .venv with the pinned
# packages the compatibility tests and benchmarks drive: the real mlflow client among them.
# Re-running is cheap: nothing is installed when the requirements have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

req=(tests/requirements.txt bench/requirements.txt)
stamp=.venv/.requirements.sha256
want=$(cat "${req[@]}" 2>/dev/null | sha256sum | cut -d' ' -f1)

if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "python-env: installing ${req[*]} into .venv" >&2
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
for r in "${req[@]}"; do
  [[ -f $r ]] && .venv/bin/python -m pip install -q -r "$r"
done
echo "$want" > "$stamp"
