# Starts a throwaway S3-protocol server (moto) for the tests; source it: `. scripts/s3.sh`.
#
# moto 5.2.5 comes from PyPI into its own .venv-s3 (its boto and werkzeug pins stay out of
# mlflow's .venv). The server listens on a free loopback port, keeps objects in memory and
# temporary files, and stops when slipway_s3_stop runs. It exports the variables both Slipway
# (object_store) and the MLflow client (boto3) read: AWS_ENDPOINT_URL, MLFLOW_S3_ENDPOINT_URL,
# credentials and region, and SLIPWAY_TEST_S3_BUCKET, a bucket made for the tests. An already
# exported SLIPWAY_TEST_S3_BUCKET is used as it is.

slipway_s3_env() {
  local req=tests/s3-requirements.txt venv=.venv-s3
  local stamp=$venv/.requirements.sha256 want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [[ -x $venv/bin/moto_server && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return
  fi
  echo "== installing $req into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  echo "$want" >"$stamp"
}

slipway_s3_start() {
  if [[ -n ${SLIPWAY_TEST_S3_BUCKET:-} ]]; then
    echo "== using S3 bucket $SLIPWAY_TEST_S3_BUCKET at ${AWS_ENDPOINT_URL:-AWS}" >&2
    return
  fi
  slipway_s3_env
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  SLIPWAY_S3_LOG=$(mktemp /tmp/slipway-s3.XXXXXX.log)
  setsid .venv-s3/bin/moto_server -H 127.0.0.1 -p "$port" >"$SLIPWAY_S3_LOG" 2>&1 &
  SLIPWAY_S3_PID=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=slipway-test AWS_SECRET_ACCESS_KEY=slipway-test
  export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
  export SLIPWAY_TEST_S3_BUCKET=slipway-test
  local i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null -X PUT "$AWS_ENDPOINT_URL/$SLIPWAY_TEST_S3_BUCKET" 2>/dev/null; then
      echo "== S3 (moto $(.venv-s3/bin/python -c 'import moto; print(moto.__version__)')) at $AWS_ENDPOINT_URL," \
        "bucket $SLIPWAY_TEST_S3_BUCKET" >&2
      return
    fi
    sleep 0.2
  done
  echo "moto did not start; its log:" >&2
  cat "$SLIPWAY_S3_LOG" >&2
  return 1
}

slipway_s3_stop() {
  if [[ -n ${SLIPWAY_S3_PID:-} ]]; then
    kill -- -"$SLIPWAY_S3_PID" 2>/dev/null || kill "$SLIPWAY_S3_PID" 2>/dev/null || true
    rm -f "$SLIPWAY_S3_LOG"
    unset SLIPWAY_S3_PID
  fi
}
