#!/usr/bin/env bash
# Stand-in for the slipway binary that runs the real MLflow server with the same CLI,
# used to validate the compat suite itself:
#   SLIPWAY_BIN=tests/compat/tools/mlflow_reference_server.sh .venv/bin/python -m pytest tests/compat
# Accepts: server --host H --port P --data-dir D
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MLFLOW="${MLFLOW_EXE:-$HERE/../../../.venv/bin/mlflow}"
shift  # "server"
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST="$2"; shift 2;;
    --port) PORT="$2"; shift 2;;
    --data-dir) DATA="$2"; shift 2;;
    *) echo "unknown arg $1" >&2; exit 2;;
  esac
done
mkdir -p "$DATA/artifacts"
exec "$MLFLOW" server --host "$HOST" --port "$PORT" \
  --backend-store-uri "sqlite:///$DATA/mlflow.db" \
  --artifacts-destination "$DATA/artifacts" --workers 1
