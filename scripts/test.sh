#!/usr/bin/env bash
# Runs every test Slipway has: the Rust unit and integration tests, then the compatibility
# suite in which the real `mlflow` client drives the real `slipway` binary.
# Installs what it needs (a Python environment with the pinned client) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# pip keeps no second copy of every wheel: three environments' worth (Ray's among them) once
# filled a CI machine's disk. What is free is printed first, to tell such a failure apart.
export PIP_NO_CACHE_DIR=1
df -h . >&2 || true

scripts/python-env.sh
# Evidently 0.7.23, which the drift agreement tests compare against, in its own .venv-evidently.
scripts/evidently-env.sh
# Ray with its dashboard, for the pipelines' Ray executor tests, in its own .venv-ray.
scripts/ray-env.sh
# Debian's Chromium, which the browser tests drive through Playwright.
scripts/browser-env.sh
# A real OpenID provider (npm's oauth2-mock-server) for the OIDC tests.
scripts/oidc-env.sh
# The serving tests load ONNX Runtime the way a user's machine does: through the active
# virtualenv's `onnxruntime` package (its wheel carries libonnxruntime.so).
export VIRTUAL_ENV="$PWD/.venv"

# The PostgreSQL backend's tests run against a throwaway server started here (installed from
# Debian's package when missing), the S3 ones against moto (from PyPI, in .venv-s3) on
# loopback; both are stopped when this script exits.
. scripts/postgres.sh
. scripts/s3.sh
trap 'slipway_pg_stop; slipway_s3_stop' EXIT
slipway_pg_start
slipway_s3_start

echo "== format and lints" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== rust tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

echo "== compatibility suite (mlflow client against the slipway binary)" >&2
# The same build as the tests above (feature sets unified across the workspace): no rebuild.
cargo build --locked --workspace --all-targets
export SLIPWAY_BIN="$CARGO_TARGET_DIR/debug/slipway"
.venv/bin/python -m pytest tests/compat -q -p no:cacheprovider

echo "== compatibility suite on PostgreSQL with artifacts on S3 (proxied)" >&2
SLIPWAY_TEST_BACKEND=postgres SLIPWAY_TEST_ARTIFACTS=s3 .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/compat/test_tracking.py tests/compat/test_registry.py tests/compat/test_errors.py \
  tests/compat/test_durability.py tests/compat/test_audit_lineage.py tests/compat/test_artifacts.py \
  tests/compat/test_registry_sources.py tests/compat/test_serving_hotswap.py tests/compat/test_monitoring.py \
  tests/compat/test_import_mlflow.py tests/compat/test_data.py tests/compat/test_data_lineage_and_feeding.py

echo "== artifact tests with clients writing S3 directly" >&2
SLIPWAY_TEST_ARTIFACTS=s3-direct .venv/bin/python -m pytest -q -p no:cacheprovider tests/compat/test_artifacts.py \
  tests/compat/test_import_mlflow.py
