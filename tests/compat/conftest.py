"""Fixtures for the Slipway black-box compatibility suite.

The server under test is an external binary (env ``SLIPWAY_BIN``, fallback
``target/debug/slipway``) started as::

    $SLIPWAY_BIN server --host 127.0.0.1 --port PORT --data-dir DIR

Everything is exercised through the unmodified MLflow client (pinned 3.17.2) or,
where the client cannot express a case, through raw HTTP.
"""

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

# Must be set before the client issues its first request: a wrongly returned 5xx
# (or 429) then fails immediately instead of being retried with backoff for minutes.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "60"
# No telemetry / network probes from the client during tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "slipway"
STARTUP_TIMEOUT_S = float(os.environ.get("SLIPWAY_STARTUP_TIMEOUT", "30"))


def slipway_bin() -> str:
    return os.environ.get("SLIPWAY_BIN") or str(DEFAULT_BIN)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_store_uri():
    """With SLIPWAY_TEST_BACKEND=postgres, a fresh database on the server at
    SLIPWAY_TEST_PG_URL (it lives as long as that server, across restarts of ours); else None,
    and the server keeps its SQLite file in its data dir."""
    if os.environ.get("SLIPWAY_TEST_BACKEND", "sqlite") != "postgres":
        return None
    admin = os.environ["SLIPWAY_TEST_PG_URL"]
    name = "slipway_" + uuid.uuid4().hex
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def artifact_args():
    """With SLIPWAY_TEST_ARTIFACTS=s3 (proxied) or s3-direct, a fresh prefix in the bucket
    SLIPWAY_TEST_S3_BUCKET that scripts/s3.sh made (kept across restarts of one server);
    else none, and artifacts live in the data dir."""
    mode = os.environ.get("SLIPWAY_TEST_ARTIFACTS", "local")
    if mode == "local":
        return []
    assert mode in ("s3", "s3-direct"), f"SLIPWAY_TEST_ARTIFACTS={mode}: expected local, s3 or s3-direct"
    root = f"s3://{os.environ['SLIPWAY_TEST_S3_BUCKET']}/c-{uuid.uuid4().hex}"
    return ["--artifact-root", root] + (["--artifact-mode", "direct"] if mode == "s3-direct" else [])


class ServerProcess:
    """One HTTP server under test, in a process group of its own (so signals reach the workers it
    spawns): started on a fresh free port, ready once GET ``ready_path`` answers 200, its stdout
    and stderr kept under ``log_dir`` per start. A subclass names the command (``command()``,
    reading ``self.port``); the rest of the lifecycle is here, once.

    ``extra_args`` end the command line; ``env`` is the whole environment (None: this one);
    ``cwd`` the working directory (None: this one).
    """

    name = "server"
    ready_path = "/health"
    startup_timeout = STARTUP_TIMEOUT_S
    stop_timeout = 15.0

    def __init__(self, log_dir: Path, extra_args=(), env=None, cwd=None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.port = None
        self._generation = 0
        self._stderr_path = None
        # Several processes may share a log folder: each keeps its own files.
        self._log_stem = f"{self.name}-{uuid.uuid4().hex[:6]}"

    # What the readiness probe passes to requests (a CA bundle and client certificate for TLS).
    ready_kwargs: dict = {}

    def command(self) -> list:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        if self._stderr_path and self._stderr_path.exists():
            return self._stderr_path.read_text(errors="replace")[-8000:]
        return ""

    def start(self):
        self._generation += 1
        self.port = free_port()
        argv = [str(a) for a in self.command()]
        if not os.path.exists(argv[0]):
            pytest.fail(f"{argv[0]} not found (for slipway, set SLIPWAY_BIN)")
        logs = self.log_dir / f"{self._log_stem}-{self._generation}"
        self._stderr_path = logs.with_suffix(".stderr")
        with open(self._stderr_path, "wb") as err, open(logs.with_suffix(".stdout"), "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"{argv} exited with {rc} during startup:\n{self.stderr_text()}")
            try:
                if requests.get(self.url + self.ready_path, timeout=2, **self.ready_kwargs).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"{argv}: {self.ready_path} not 200 within {self.startup_timeout}s:\n{self.stderr_text()}"
                )
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the process and its children."""
        import psutil

        p = psutil.Process(self.proc.pid)
        return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))

    def _signal_group(self, sig):
        if not self.alive():
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL the whole process group (crash simulation)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout=None):
        """Graceful SIGTERM; escalate to SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout or self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self, hard: bool = False):
        """Start again, on a fresh port (SIGKILL first when hard=True)."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()


class SlipwayServer(ServerProcess):
    """``slipway server`` on a data dir that survives restarts, on the database and artifact
    root the test environment asks for (``test_backends=False``: on its data dir alone).
    Each start points the MLflow client at it."""

    def __init__(
        self, data_dir: Path, log_dir: Path, extra_args=(), env=None, cwd=None, binary=None, test_backends=True
    ):
        super().__init__(log_dir, extra_args, env, cwd)
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.store_uri = backend_store_uri() if test_backends else None
        self.artifact_args = artifact_args() if test_backends else []

    def command(self):
        return [
            self.binary or slipway_bin(),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *(["--backend-store-uri", self.store_uri] if self.store_uri else []),
            *self.artifact_args,
            *self.extra_args,
        ]

    def start(self):
        super().start()
        self.use()
        return self

    def use(self):
        """Point the MLflow client at this server."""
        os.environ["MLFLOW_TRACKING_URI"] = self.url
        mlflow.set_tracking_uri(self.url)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Shared server for the whole session (tests use unique experiment names)."""
    root = tmp_path_factory.mktemp("slipway-shared")
    srv = SlipwayServer(root / "data", root / "logs")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def tracking(server):
    """Make sure the client points at the shared server (another fixture may have moved it)."""
    server.use()
    yield server
    if mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    """A dedicated server that tests may kill and restart (durability, traversal)."""
    root = tmp_path_factory.mktemp("slipway-private")
    srv = SlipwayServer(root / "data", root / "logs")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(tracking):
    return mlflow.MlflowClient(tracking_uri=tracking.url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def experiment_id(client):
    """A fresh experiment for a single test; also made the active experiment."""
    name = unique("exp")
    eid = client.create_experiment(name)
    mlflow.set_experiment(experiment_id=eid)
    return eid


class RawResponse:
    """An answer read off a socket without requests (http.client, a raw POST): the fields
    ``assert_json_error`` and the tests read."""

    def __init__(self, status: int, body: bytes, headers=None):
        self.status = self.status_code = status
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self.headers = headers or {}


def assert_quiet_into_closed_pipe(argv, tmp_path):
    """Runs `argv | head -c 10`: a report larger than the pipe's buffer meets EPIPE once head
    exits, which must end the output quietly (no error text, no backtrace, status 0)."""
    err = tmp_path / "stderr.txt"
    cmd = " ".join(f"'{a}'" for a in argv)
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {cmd} 2>'{err}' | head -c 10"],
        capture_output=True,
        env={**os.environ, "RUST_BACKTRACE": "1"},
        timeout=120,
    )
    assert proc.stdout == b'{\n  "refer'
    assert err.read_text() == ""
    assert proc.returncode == 0


def assert_json_error(resp, expected_status=None, expected_code=None, style="mlflow", naming=()):
    """An error answer in the protocol's JSON shape; returns the parsed body.

    ``expected_status``: the status, or a collection of allowed ones; with none, any 4xx (bad
    input is never a 5xx: the MLflow client retries those for minutes).
    ``style``: "mlflow", ``{"error_code": non-empty string, "message": non-empty string}`` with
    ``expected_code`` (or a collection of allowed codes) when given; "v2", the serving
    protocols' (V2, V1) ``{"error": non-empty string}``.
    ``naming``: the message must name at least one of these.
    """
    status, text = resp.status_code, resp.text
    if expected_status is None:
        assert 400 <= status < 500, f"expected 4xx, got {status}: {text[:500]}"
    elif isinstance(expected_status, (tuple, list, set)):
        assert status in expected_status, f"expected one of {expected_status}, got {status}: {text[:500]}"
    else:
        assert status == expected_status, f"expected {expected_status}, got {status}: {text[:500]}"
    try:
        body = json.loads(text)
    except ValueError:
        raise AssertionError(f"error body is not JSON (status {status}): {text[:500]!r}")
    assert isinstance(body, dict), body
    if style == "mlflow":
        assert isinstance(body.get("error_code"), str) and body["error_code"], body
        message = body.get("message")
        if isinstance(expected_code, (tuple, list, set)):
            assert body["error_code"] in expected_code, body
        elif expected_code is not None:
            assert body["error_code"] == expected_code, body
    else:
        assert style == "v2", f"unknown error style {style!r}"
        assert expected_code is None, "the serving protocols' errors carry no code"
        message = body.get("error")
    assert isinstance(message, str) and message, body
    if naming:
        assert any(n in message for n in naming), f"message names none of {list(naming)}: {message!r}"
    return body


# ---- browser tests (test_ui_*.py): Debian's Chromium through Playwright, no browser download ----


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Where pages' screenshots go: $SLIPWAY_UI_SCREENSHOTS, else a temp dir."""
    d = Path(os.environ.get("SLIPWAY_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui-shots"))
    d.mkdir(parents=True, exist_ok=True)
    return d
