#!/usr/bin/env python3
"""What authentication costs a request: the same calls against a server with auth off and one
with auth on, side by side, and MLflow's basic-auth app against plain `mlflow server`.

Usage (from the repository root, on a quiet machine):

    .venv/bin/python bench/auth_bench.py --slipway-bin target/release/slipway [--n 3000] [--skip-mlflow] [--write-results]

Each figure is the median (and p95) of N sequential requests over one keep-alive connection,
after a warm-up: `GET runs/get` for tracking and a one-row `POST /serving/<d>/invocations` for
serving. With auth on it is measured as the admin (Basic, verified once then cached), as a user
holding grants on the one experiment and deployment (Basic, cached), and with that user's API
token (Bearer). The overhead is the difference of medians. A cold Basic login (one argon2id
verification) and an unknown user (a dummy verification, so the same cost) are timed apart.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "bench-admin-password"
USER_PASSWORD = "bench-user-password"
API = "/api/2.0/mlflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Conn:
    """One keep-alive connection; `call` returns (status, parsed body)."""

    def __init__(self, port: int, auth: str | None = None):
        self.port, self.auth = port, auth
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body=None, auth: str | None = "default"):
        headers = {"content-type": "application/json"}
        token = self.auth if auth == "default" else auth
        if token:
            headers["authorization"] = token
        data = None if body is None else json.dumps(body)
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw) if raw else {}
        except ValueError:
            return r.status, raw

    def ok(self, method: str, path: str, body=None, auth: str | None = "default"):
        status, got = self.call(method, path, body, auth)
        if status != 200:
            raise SystemExit(f"{method} {path}: {status} {str(got)[:300]}")
        return got


def start(argv: list[str], env: dict, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{argv[0]} exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit(f"{argv} did not become healthy")


def stop(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def timed(conn: Conn, method: str, path: str, body, n: int, auth="default") -> list[float]:
    for _ in range(min(200, n // 5)):
        conn.ok(method, path, body, auth)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, got = conn.call(method, path, body, auth)
        out.append((time.perf_counter() - t) * 1e6)
        if status != 200:
            raise SystemExit(f"{method} {path}: {status} {str(got)[:300]}")
    return out


def p(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def onnx_model(tmp: Path) -> Path | None:
    """A LogisticRegression on 4 features as an MLflow ONNX model directory."""
    try:
        import mlflow.onnx
        import numpy as np
        from skl2onnx import to_onnx
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    onx = to_onnx(LogisticRegression().fit(X, y), X[:1], options={"zipmap": False})
    d = tmp / "model"
    mlflow.onnx.save_model(onx, str(d))
    return d


def world(port: int, admin: str | None, model_dir: Path | None, tmp: Path) -> dict:
    """An experiment with a run, and a deployment of a registered ONNX model (when onnx is here)."""
    c = Conn(port, admin)
    exp = c.ok("POST", f"{API}/experiments/create", {"name": "auth-bench"})["experiment_id"]
    run = c.ok("POST", f"{API}/runs/create", {"experiment_id": exp, "start_time": 1})["run"]["info"]["run_id"]
    c.ok("POST", f"{API}/runs/log-batch", {"run_id": run, "params": [{"key": "lr", "value": "0.1"}],
                                          "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]})
    out = {"experiment": exp, "run": run, "deployment": None}
    if model_dir is None:
        return out
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
    if admin:
        env.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    script = (
        "import mlflow\n"
        f"mlflow.set_experiment(experiment_id='{exp}')\n"
        "with mlflow.start_run():\n"
        f"    mlflow.log_artifacts({str(model_dir)!r}, 'model')\n"
        "    uri = mlflow.get_artifact_uri('model')\n"
        "mlflow.register_model(uri, 'bench-model')\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    c.ok("POST", "/api/v1/deployments", {"name": "bench", "model": "bench-model", "version": "1"})
    deadline = time.monotonic() + 120
    while c.call("GET", "/serving/bench/ping")[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit("deployment not ready")
        time.sleep(0.2)
    out["deployment"] = "bench"
    return out


def measure(port: int, w: dict, auth: str | None, n: int) -> dict:
    c = Conn(port, auth)
    got = {"tracking": timed(c, "GET", f"{API}/runs/get?run_id={w['run']}", None, n)}
    if w["deployment"]:
        body = {"dataframe_split": {"columns": ["f0", "f1", "f2", "f3"], "data": [[0.1, 0.2, 0.3, 0.4]]}}
        got["serving"] = timed(c, "POST", f"/serving/{w['deployment']}/invocations", body, n)
    return got


def slipway_rows(bin_: str, n: int, tmp: Path) -> tuple[list[tuple], dict]:
    model_dir = onnx_model(tmp)
    rows, extra = [], {}
    # auth off
    port = free_port()
    data = tmp / "off"
    proc = start([bin_, "server", "--port", str(port), "--data-dir", str(data), "--mlflow-ui", "off"],
                 dict(os.environ), port, tmp / "off.log")
    try:
        w = world(port, None, model_dir, tmp)
        off = measure(port, w, None, n)
    finally:
        stop(proc)
    # auth on
    port = free_port()
    env = dict(os.environ, SLIPWAY_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    proc = start([bin_, "server", "--port", str(port), "--data-dir", str(tmp / "on"), "--mlflow-ui", "off",
                  "--auth", "true"], env, port, tmp / "on.log")
    try:
        admin = basic("admin", ADMIN_PASSWORD)
        w = world(port, admin, model_dir, tmp)
        c = Conn(port, admin)
        c.ok("POST", f"{API}/users/create", {"username": "user", "password": USER_PASSWORD})
        grant = "/api/3.0/mlflow/users/permissions/grant"
        c.ok("POST", grant, {"username": "user", "resource_type": "experiment", "resource_id": w["experiment"],
                             "permission": "READ"})
        if w["deployment"]:
            c.ok("POST", grant, {"username": "user", "resource_type": "deployment", "resource_id": "bench",
                                 "permission": "USE"})
        user = basic("user", USER_PASSWORD)
        token = "Bearer " + Conn(port, user).ok("POST", "/api/v1/tokens", {"name": "bench"})["secret"]
        on = {who: measure(port, w, auth, n) for who, auth in
              [("admin, Basic", admin), ("user with grants, Basic", user), ("user's token, Bearer", token)]}
        # A cold login and an unknown user: one argon2id verification each (9 attempts in all,
        # under the per-address throttle of 10).
        cold, unknown = [], []
        for i in range(4):
            c.ok("PATCH", f"{API}/users/update-password", {"username": "user", "password": f"{USER_PASSWORD}-{i}"})
            fresh = Conn(port, basic("user", f"{USER_PASSWORD}-{i}"))
            t = time.perf_counter()
            fresh.ok("GET", f"{API}/runs/get?run_id={w['run']}")
            cold.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            status, _ = Conn(port, basic(f"nobody{i}", "wrong-password")).call("GET", f"{API}/runs/get?run_id={w['run']}")
            unknown.append((time.perf_counter() - t) * 1e6)
            assert status == 401, status
        extra = {"cold": statistics.median(cold), "unknown": statistics.median(unknown)}
    finally:
        stop(proc)
    for kind in ("tracking", "serving"):
        if kind not in off:
            continue
        base = p(off[kind], 0.5)
        rows.append((kind, "auth off (anonymous)", base, p(off[kind], 0.95), None))
        for who, got in on.items():
            rows.append((kind, who, p(got[kind], 0.5), p(got[kind], 0.95), p(got[kind], 0.5) - base))
    return rows, extra


def mlflow_rows(n: int, tmp: Path) -> list[tuple]:
    rows = []
    base = None
    for label, app in [("mlflow server (anonymous)", None), ("mlflow --app-name basic-auth, admin", "basic-auth")]:
        port = free_port()
        d = tmp / f"mlflow-{app or 'plain'}"
        d.mkdir()
        env = dict(os.environ)
        argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--port", str(port),
                "--backend-store-uri", f"sqlite:///{d}/mlflow.db", "--default-artifact-root", str(d / "art")]
        auth = None
        if app:
            ini = d / "auth.ini"
            ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{d}/auth.db\n"
                           "admin_username = admin\nauthorization_function = "
                           "mlflow.server.auth:authenticate_request_basic_auth\n")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
                       MLFLOW_FLASK_SERVER_SECRET_KEY="bench")
            argv += ["--app-name", app]
            auth = basic("admin", ADMIN_PASSWORD)
        proc = start(argv, env, port, d / "server.log")
        try:
            w = world(port, auth, None, tmp)
            # MLflow's basic-auth app verifies the password on every request: fewer samples.
            got = measure(port, w, auth, 200)["tracking"]
        finally:
            stop(proc)
        med = p(got, 0.5)
        base = med if base is None else base
        rows.append(("tracking", label, med, p(got, 0.95), None if app is None else med - base))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slipway-bin", default=str(REPO / "target/release/slipway"))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="auth-bench-"))
    try:
        rows, extra = slipway_rows(args.slipway_bin, args.n, tmp)
        if not args.skip_mlflow:
            rows += mlflow_rows(args.n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {stamp} auth overhead (n={args.n} sequential requests per row, one keep-alive connection)", "",
             f"- machine: {os.cpu_count()} CPUs; slipway: {args.slipway_bin}", "",
             "| call | caller | p50 | p95 | p50 over anonymous |", "|---|---|---|---|---|"]
    for kind, who, med, p95, over in rows:
        o = "" if over is None else f"{over:+.0f} µs"
        lines.append(f"| {kind} | {who} | {med:.0f} µs | {p95:.0f} µs | {o} |")
    lines += ["", f"Cold Basic login (one argon2id verification, then the request): {extra['cold'] / 1000:.1f} ms "
              f"median; unknown user (a dummy verification): {extra['unknown'] / 1000:.1f} ms median.", ""]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        with open(REPO / "bench/RESULTS.md", "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
