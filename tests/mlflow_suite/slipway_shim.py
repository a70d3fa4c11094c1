"""pytest plugin: point MLflow's own server tests at `slipway server` instead of MLflow's app.

MLflow's tests start their server through `tests.tracking.integration_test_utils`: the
`ServerThread(app, port)` context manager (in-process MLflow app on a port) and
`_init_server(backend_uri, root_artifact_uri, ...)`. Both yield the server's URL. This
plugin replaces them, before any test module imports them, with ones that start a fresh
`slipway server` (its own data directory, SQLite, proxied artifacts) on a free port and stop
it afterwards. Nothing else in MLflow's tests changes: the same tests, the same client.

Loaded by `run.py` with `-p slipway_shim`; needs `SLIPWAY_BIN`, and the checkout's root on
`PYTHONPATH` so `tests.tracking.integration_test_utils` imports at configure time.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _slipway(port=None):
    binary = os.environ["SLIPWAY_BIN"]
    port = port or _free_port()
    root = tempfile.mkdtemp(prefix="slipway-mlflow-suite-")
    log = open(os.path.join(root, "server.log"), "wb")
    proc = subprocess.Popen(
        [binary, "server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(root, "data")],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"slipway server exited with {proc.returncode}; log in {root}")
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"slipway server gave no /health within 30s; log in {root}")
            time.sleep(0.05)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


class SlipwayServerThread:
    """Drop-in for `ServerThread(app, port)`: the app is ignored, slipway serves the port."""

    def __init__(self, app=None, port=None, *args, **kwargs):
        self._cm = _slipway(port)

    def __enter__(self):
        return self._cm.__enter__()

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


@contextlib.contextmanager
def slipway_init_server(*args, **kwargs):
    """Drop-in for `_init_server(...)`: the backend and artifact URIs are MLflow's; ignored."""
    with _slipway() as url:
        yield url


def pytest_configure(config):
    import tests.tracking.integration_test_utils as utils

    utils.ServerThread = SlipwayServerThread
    utils._init_server = slipway_init_server
