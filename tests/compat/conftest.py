"""Fixtures for the Slipway black-box compatibility suite.

The server under test is an external binary (env ``SLIPWAY_BIN``, fallback
``target/debug/slipway``) started as::

    $SLIPWAY_BIN server --host 127.0.0.1 --port PORT --data-dir DIR

Everything is exercised through the unmodified MLflow client (pinned 3.17.2) or,
where the client cannot express a case, through raw HTTP.
"""

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


class SlipwayServer:
    """One server process on a data dir that survives restarts."""

    def __init__(self, data_dir: Path, log_dir: Path):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.port = None
        self._generation = 0
        self._stderr_path = None
        self.store_uri = backend_store_uri()
        self.artifact_args = artifact_args()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        if self._stderr_path and self._stderr_path.exists():
            return self._stderr_path.read_text(errors="replace")[-8000:]
        return ""

    def start(self):
        binary = slipway_bin()
        if not os.path.exists(binary):
            pytest.fail(f"slipway binary not found at {binary} (set SLIPWAY_BIN)")
        self._generation += 1
        self.port = free_port()
        self._stderr_path = self.log_dir / f"server-{self._generation}.stderr"
        stdout_path = self.log_dir / f"server-{self._generation}.stdout"
        with open(self._stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ]
                + (["--backend-store-uri", self.store_uri] if self.store_uri else [])
                + self.artifact_args,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"slipway server exited with {rc} during startup:\n{self.stderr_text()}"
                )
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"slipway server did not answer /health within {STARTUP_TIMEOUT_S}s:\n"
                    f"{self.stderr_text()}"
                )
            time.sleep(0.1)
        self.use()
        return self

    def use(self):
        """Point the MLflow client at this server."""
        os.environ["MLFLOW_TRACKING_URI"] = self.url
        mlflow.set_tracking_uri(self.url)

    def _signal_group(self, sig):
        if self.proc is None or self.proc.poll() is not None:
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

    def stop(self, timeout=15.0):
        """Graceful SIGTERM; escalate to SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self, hard: bool = False):
        """Restart on the same data dir (SIGKILL first when hard=True)."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()


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


def assert_json_error(resp, expected_status=None, expected_code=None):
    """Every error must be a 4xx with a JSON body carrying error_code and message."""
    status = resp.status_code if hasattr(resp, "status_code") else resp.status
    body_text = resp.text if hasattr(resp, "text") else resp.body.decode("utf-8", "replace")
    assert 400 <= status < 500, f"expected 4xx, got {status}: {body_text[:500]}"
    if expected_status is not None:
        if isinstance(expected_status, (tuple, list, set)):
            assert status in expected_status, f"got {status}: {body_text[:500]}"
        else:
            assert status == expected_status, f"got {status}: {body_text[:500]}"
    import json

    try:
        body = json.loads(body_text)
    except ValueError:
        raise AssertionError(f"error body is not JSON (status {status}): {body_text[:500]!r}")
    assert isinstance(body, dict), body
    assert isinstance(body.get("error_code"), str) and body["error_code"], body
    assert isinstance(body.get("message"), str), body
    if expected_code is not None:
        if isinstance(expected_code, (tuple, list, set)):
            assert body["error_code"] in expected_code, body
        else:
            assert body["error_code"] == expected_code, body
    return body
