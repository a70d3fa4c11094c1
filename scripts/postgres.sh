# Starts a throwaway PostgreSQL server for the tests; source it: `. scripts/postgres.sh`.
#
# Installs Debian's `postgresql` package when no server binaries are found (as root), creates
# a cluster in a temporary directory owned by the `postgres` user (initdb refuses root), starts
# it on a free loopback port and exports SLIPWAY_TEST_PG_URL for the tests. The cluster is
# stopped and removed when the calling shell exits. An already exported SLIPWAY_TEST_PG_URL is
# used as it is.

slipway_pg_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

slipway_pg_start() {
  if [[ -n ${SLIPWAY_TEST_PG_URL:-} ]]; then
    echo "== using PostgreSQL at $SLIPWAY_TEST_PG_URL" >&2
    return
  fi
  local bin
  bin=$(slipway_pg_bin)
  if [[ -z $bin ]]; then
    if [[ $(id -u) != 0 ]]; then
      echo "PostgreSQL is not installed and this is not root: apt-get install postgresql" >&2
      return 1
    fi
    echo "== installing PostgreSQL (Debian package)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bin=$(slipway_pg_bin)
  fi
  SLIPWAY_PG_DIR=$(mktemp -d /tmp/slipway-pg.XXXXXX)
  SLIPWAY_PG_AS=()
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$SLIPWAY_PG_DIR"
    SLIPWAY_PG_AS=(runuser -u postgres --)
  fi
  "${SLIPWAY_PG_AS[@]}" "$bin/initdb" -D "$SLIPWAY_PG_DIR/data" -U slipway --auth=trust -E UTF8 --locale=C \
    --no-sync >"$SLIPWAY_PG_DIR/initdb.log"
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${SLIPWAY_PG_AS[@]}" "$bin/pg_ctl" -D "$SLIPWAY_PG_DIR/data" -l "$SLIPWAY_PG_DIR/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $SLIPWAY_PG_DIR -c max_connections=400 -c shared_buffers=64MB" \
    >/dev/null
  SLIPWAY_PG_BIN=$bin
  export SLIPWAY_TEST_PG_URL="postgresql://slipway@127.0.0.1:$port/postgres"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $SLIPWAY_TEST_PG_URL" >&2
}

slipway_pg_stop() {
  if [[ -n ${SLIPWAY_PG_DIR:-} ]]; then
    "${SLIPWAY_PG_AS[@]}" "$SLIPWAY_PG_BIN/pg_ctl" -D "$SLIPWAY_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$SLIPWAY_PG_DIR"
    unset SLIPWAY_PG_DIR
  fi
}
