#!/usr/bin/env python3
"""Side-by-side benchmark: MLflow reference tracking server vs Slipway.

Usage (from the repository root):

    .venv/bin/python bench/tracking_bench.py [--quick] [--only slipway|mlflow] [--write-results]

Each server is started on its own (never both at once, so they do not compete
for the CPUs), every workload runs against it over raw HTTP, then it is stopped
(its whole process group) and its data directory removed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

try:
    import psutil
    import requests
    from requests.adapters import HTTPAdapter
except ImportError as e:  # pragma: no cover
    sys.exit(f"missing dependency ({e}); run: .venv/bin/pip install -r bench/requirements.txt")

REPO = Path(__file__).resolve().parent.parent
API = "/api/2.0/mlflow"
ART_API = "/api/2.0/mlflow-artifacts/artifacts"
MiB = 1024 * 1024

# --------------------------------------------------------------------------------------
# sizes


@dataclass
class Sizes:
    batch_clients: int = 8
    batch_requests_per_client: int = 25
    batch_size: int = 1000
    log_metric_n: int = 1000
    create_run_n: int = 500
    search_runs: int = 20_000
    search_metrics: int = 4
    search_points: int = 100
    search_queries: int = 50
    populate_threads: int = 8
    history_points: int = 100_000
    history_page: int = 25_000
    artifact_bytes: int = 1024 * MiB


def sizes_for(quick: bool) -> Sizes:
    if not quick:
        return Sizes()
    return Sizes(
        batch_requests_per_client=5,
        log_metric_n=200,
        create_run_n=100,
        search_runs=1_000,
        search_queries=20,
        history_points=100_000,
        artifact_bytes=64 * MiB,
    )


# --------------------------------------------------------------------------------------
# process handling / memory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(pid: int) -> int:
    """Sum of RSS (bytes) over the process and all its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class RssSampler:
    """Samples the tree RSS of `pid` every `interval` seconds in a background thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.start = tree_rss(pid)  # baseline, taken before the measured work begins
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, tree_rss(self.pid))


def fresh_pg_database(admin_url: str, prefix: str) -> str:
    """A new, empty database on the PostgreSQL server at admin_url; its URI."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin_url, "-qXc", f"CREATE DATABASE {name}"], check=True)
    return admin_url.rsplit("/", 1)[0] + "/" + name


class Server:
    def __init__(self, kind: str, slipway_bin: str, log_dir: Path, pg_url: str | None = None):
        self.kind = kind
        self.slipway_bin = slipway_bin
        # On PostgreSQL each server gets a database of its own on the one server.
        self.store_uri = fresh_pg_database(pg_url, f"bench_{kind}") if pg_url else None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=log_dir))
        self.log_path = log_dir / f"{kind}-server.log"
        self.proc: subprocess.Popen | None = None
        self.startup_s = float("nan")

    def cmd(self) -> list[str]:
        if self.kind == "mlflow":
            return [
                str(REPO / ".venv/bin/mlflow"), "server",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", self.store_uri or f"sqlite:///{self.data_dir}/mlflow.db",
                "--artifacts-destination", str(self.data_dir / "art"),
            ]
        return [
            self.slipway_bin, "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir),
        ] + (["--backend-store-uri", self.store_uri] if self.store_uri else [])

    def start(self, timeout: float):
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        # start_new_session == setsid: the server gets its own process group, which we kill
        # as a whole in stop() (mlflow spawns uvicorn workers and huey consumers).
        self.proc = subprocess.Popen(
            self.cmd(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(self.data_dir),
        )
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode} during "
                                   f"startup\n{self.log_tail()}")
            try:
                if requests.get(self.base + "/health", timeout=2).status_code == 200:
                    self.startup_s = time.perf_counter() - t0
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.kind} server not healthy after {timeout}s\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join("    | " + l for l in lines[-n:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        pid = self.proc.pid
        try:
            stragglers = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            stragglers = []
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(pid, signal.SIGKILL)  # anything left in the group (e.g. huey consumers)
        except ProcessLookupError:
            pass
        # descendants that left the group (setsid'd again): kill them by pid
        for p in stragglers:
            try:
                p.kill()
            except psutil.Error:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self._log.close()

    def cleanup(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# HTTP helpers


class Anomalies:
    """Collects unexpected server answers (request, expected, got) for the report."""

    def __init__(self):
        self.items: list[str] = []
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, server: str, what: str, detail: str):
        key = f"{server}: {what}"
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.counts[key] <= 3:
                self.items.append(f"{key}: {detail}")

    def summary(self) -> list[str]:
        out = list(self.items)
        for k, c in self.counts.items():
            if c > 3:
                out.append(f"{k}: ... {c} occurrences in total")
        return out


def new_session(pool: int = 4) -> requests.Session:
    s = requests.Session()
    a = HTTPAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0)
    s.mount("http://", a)
    return s


def _short(b: bytes | str, n: int = 300) -> str:
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b if len(b) <= n else b[:n] + "..."


class Client:
    def __init__(self, server: Server, anomalies: Anomalies, session: requests.Session | None = None):
        self.server = server
        self.base = server.base
        self.anom = anomalies
        self.s = session or new_session()

    def post(self, endpoint: str, body: dict | bytes, what: str | None = None) -> dict | None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            r = self.s.post(self.base + API + endpoint, data=data,
                            headers={"Content-Type": "application/json"}, timeout=300)
        except requests.RequestException as e:
            self.anom.add(self.server.kind, what or f"POST {endpoint}", f"expected 200, got {e!r}")
            return None
        if r.status_code != 200:
            self.anom.add(self.server.kind, what or f"POST {endpoint}",
                          f"expected 200, got {r.status_code} {_short(r.content)}")
            return None
        try:
            return r.json()
        except ValueError:
            self.anom.add(self.server.kind, what or f"POST {endpoint}",
                          f"expected JSON body, got {_short(r.content)}")
            return None

    def get(self, endpoint: str, params: dict, what: str | None = None) -> dict | None:
        try:
            r = self.s.get(self.base + API + endpoint, params=params, timeout=300)
        except requests.RequestException as e:
            self.anom.add(self.server.kind, what or f"GET {endpoint}", f"expected 200, got {e!r}")
            return None
        if r.status_code != 200:
            self.anom.add(self.server.kind, what or f"GET {endpoint}",
                          f"expected 200, got {r.status_code} {_short(r.content)}")
            return None
        try:
            return r.json()
        except ValueError:
            self.anom.add(self.server.kind, what or f"GET {endpoint}",
                          f"expected JSON body, got {_short(r.content)}")
            return None

    def create_experiment(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        r = self.post("/experiments/create", {"name": name})
        if not r or "experiment_id" not in r:
            raise RuntimeError(f"{self.server.kind}: experiments/create failed")
        eid = r["experiment_id"]
        if not isinstance(eid, str):
            self.anom.add(self.server.kind, "experiments/create",
                          f"expected experiment_id as JSON string, got {eid!r}")
            eid = str(eid)
        return eid

    def create_run(self, eid: str, name: str) -> str | None:
        r = self.post("/runs/create", {"experiment_id": eid, "run_name": name,
                                       "start_time": now_ms()})
        if not r:
            return None
        try:
            return r["run"]["info"]["run_id"]
        except (KeyError, TypeError):
            self.anom.add(self.server.kind, "runs/create",
                          f"expected run.info.run_id, got {_short(json.dumps(r))}")
            return None


def now_ms() -> int:
    return int(time.time() * 1000)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# --------------------------------------------------------------------------------------
# results model


@dataclass
class Metric:
    key: str            # row id
    label: str          # row text
    unit: str
    higher_better: bool
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


class Results:
    def __init__(self):
        self.rows: dict[str, Metric] = {}

    def put(self, server: str, key: str, label: str, unit: str, higher_better: bool,
            value: float, note: str = ""):
        m = self.rows.setdefault(key, Metric(key, label, unit, higher_better))
        m.values[server] = value
        if note:
            m.notes[server] = note


def fmt(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "MiB":
        return f"{v / MiB:,.1f} MiB"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "s":
        return f"{v:,.2f} s"
    if unit in ("metrics/s", "MiB/s"):
        return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.1f} {unit}"
    return f"{v:,.3g} {unit}"


def table(results: Results, servers: list[str]) -> str:
    lines = ["| workload | mlflow | slipway | ratio |", "|---|---|---|---|"]
    for m in results.rows.values():
        cells = []
        for s in ("mlflow", "slipway"):
            c = fmt(m.values.get(s), m.unit) if s in servers else "not run"
            if m.notes.get(s):
                c += f" ({m.notes[s]})"
            cells.append(c)
        a, b = m.values.get("mlflow"), m.values.get("slipway")
        ratio = "n/a"
        if a is not None and b is not None and a == a and b == b and a > 0 and b > 0:
            r = b / a if m.higher_better else a / b
            ratio = f"{r:,.2f}x"
        lines.append(f"| {m.label} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# workloads


def w_log_batch(srv: Server, sz: Sizes, res: Results, anom: Anomalies):
    """1. log-batch throughput (8 clients), and 7. peak RSS under that load."""
    c = Client(srv, anom)
    eid = c.create_experiment("bench-logbatch")
    run_ids = [c.create_run(eid, f"client-{i}") for i in range(sz.batch_clients)]
    if not all(run_ids):
        raise RuntimeError("runs/create failed")
    keys = [f"m{k}" for k in range(10)]
    per_key = sz.batch_size // len(keys)
    base_ts = now_ms()

    def body(run_id: str, req: int) -> bytes:
        ms = []
        for k in keys:
            for j in range(per_key):
                step = req * per_key + j
                ms.append({"key": k, "value": (step * 7919 % 1000) / 1000.0,
                           "timestamp": base_ts + step, "step": step})
        return json.dumps({"run_id": run_id, "metrics": ms}).encode()

    # Pre-encode every body so that JSON encoding on the client is not timed.
    bodies = [[body(rid, q) for q in range(sz.batch_requests_per_client)] for rid in run_ids]
    # warm-up: one small batch per run (keep-alive connections get opened too)
    sessions = [new_session(1) for _ in run_ids]
    for rid, s in zip(run_ids, sessions):
        Client(srv, anom, s).post("/runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "warmup", "value": 1.0, "timestamp": base_ts, "step": 0}]})

    errors = [0] * len(run_ids)
    barrier = threading.Barrier(len(run_ids) + 1)

    def worker(i: int):
        cl = Client(srv, anom, sessions[i])
        barrier.wait()
        for b in bodies[i]:
            if cl.post("/runs/log-batch", b, "runs/log-batch (1000 metrics)") is None:
                errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(run_ids))]
    for t in threads:
        t.start()
    with RssSampler(srv.proc.pid) as rss:
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
    nerr = sum(errors)
    ok = len(run_ids) * sz.batch_requests_per_client - nerr
    note = f"{nerr} failed requests" if nerr else ""
    label = (f"log-batch throughput ({sz.batch_clients} clients x {sz.batch_requests_per_client} "
             f"req x {sz.batch_size} metrics)")
    res.put(srv.kind, "batch", label, "metrics/s", True, ok * sz.batch_size / dt, note)
    res.put(srv.kind, "rss_peak", f"server RSS peak during log-batch load", "MiB", False, rss.peak,
            f"before: {rss.start / MiB:,.0f}")
    for s in sessions:
        s.close()
    # spot check: history of one key of client 0 has all points
    h = c.get("/metrics/get-history", {"run_id": run_ids[0], "metric_key": "m3",
                                       "max_results": 25000})
    want = per_key * sz.batch_requests_per_client
    if h is not None and len(h.get("metrics", [])) != want and not nerr:
        anom.add(srv.kind, "log-batch spot check",
                 f"GET metrics/get-history m3: expected {want} points, got {len(h.get('metrics', []))}")


def w_log_metric(srv: Server, sz: Sizes, res: Results, anom: Anomalies):
    c = Client(srv, anom)
    eid = c.create_experiment("bench-logmetric")
    rid = c.create_run(eid, "latency")
    if not rid:
        raise RuntimeError("runs/create failed")
    base = now_ms()
    for i in range(20):  # warm-up
        c.post("/runs/log-metric", {"run_id": rid, "key": "warm", "value": i,
                                    "timestamp": base + i, "step": i})
    lat, errs = [], 0
    for i in range(sz.log_metric_n):
        b = json.dumps({"run_id": rid, "key": "lat", "value": i * 0.5,
                        "timestamp": base + i, "step": i}).encode()
        t0 = time.perf_counter()
        ok = c.post("/runs/log-metric", b) is not None
        lat.append((time.perf_counter() - t0) * 1000)
        errs += not ok
    note = f"{errs} failed" if errs else ""
    res.put(srv.kind, "lm50", f"log-metric latency p50 (sequential, n={sz.log_metric_n})", "ms",
            False, pct(lat, 50), note)
    res.put(srv.kind, "lm95", f"log-metric latency p95", "ms", False, pct(lat, 95))


def w_create_run(srv: Server, sz: Sizes, res: Results, anom: Anomalies):
    c = Client(srv, anom)
    eid = c.create_experiment("bench-createrun")
    for i in range(10):
        c.create_run(eid, f"warm-{i}")
    lat, errs = [], 0
    for i in range(sz.create_run_n):
        b = json.dumps({"experiment_id": eid, "run_name": f"r{i}", "start_time": now_ms()}).encode()
        t0 = time.perf_counter()
        ok = c.post("/runs/create", b) is not None
        lat.append((time.perf_counter() - t0) * 1000)
        errs += not ok
    note = f"{errs} failed" if errs else ""
    res.put(srv.kind, "cr50", f"create-run latency p50 (sequential, n={sz.create_run_n})", "ms",
            False, pct(lat, 50), note)
    res.put(srv.kind, "cr95", f"create-run latency p95", "ms", False, pct(lat, 95))


def metric_value(run: int, k: int, step: int) -> float:
    """Deterministic pseudo-random value in [0, 1): same data on both servers."""
    x = (run * 1_000_003 + k * 10_007 + step * 101 + 12345) & 0xFFFFFFFF
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return (x % 1_000_000) / 1_000_000.0


def w_search(srv: Server, sz: Sizes, res: Results, anom: Anomalies) -> list[float]:
    c = Client(srv, anom)
    eid = c.create_experiment("bench-search")
    entries_per_run = sz.search_metrics * sz.search_points
    # A log-batch targets one run, so a run's whole history (4 x 100 = 400 entries, within
    # the 1000-entry limit) goes in one request: per run = runs/create + one runs/log-batch.
    assert entries_per_run <= 1000
    base_ts = now_ms()
    errs = [0]
    lock = threading.Lock()
    tl = threading.local()

    done = [0]
    tick = max(1, sz.search_runs // 10)

    def populate(i: int):
        with lock:
            done[0] += 1
            if done[0] % tick == 0:
                print(f" {done[0] * 100 // sz.search_runs}%", end="", flush=True)
        if not hasattr(tl, "c"):
            tl.c = Client(srv, anom, new_session(1))
        cl = tl.c
        rid = cl.create_run(eid, f"run-{i}")
        if rid is None:
            with lock:
                errs[0] += 1
            return
        ms = [{"key": f"m{k}", "value": metric_value(i, k, s), "timestamp": base_ts + s, "step": s}
              for k in range(sz.search_metrics) for s in range(sz.search_points)]
        if cl.post("/runs/log-batch", {"run_id": rid, "metrics": ms},
                   f"runs/log-batch ({entries_per_run} metrics, populate)") is None:
            with lock:
                errs[0] += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(sz.populate_threads) as ex:
        list(ex.map(populate, range(sz.search_runs)))
    pop = time.perf_counter() - t0
    note = f"{errs[0]} failed runs" if errs[0] else ""
    res.put(srv.kind, "pop", f"populate {sz.search_runs:,} runs x {sz.search_metrics} metrics x "
            f"{sz.search_points} steps ({sz.populate_threads} threads; create + log-batch)", "s",
            False, pop, note)

    # expected answer, from the deterministic data (latest value = last step)
    last = sz.search_points - 1
    expect = sorted((metric_value(i, 1, last) for i in range(sz.search_runs)
                     if metric_value(i, 0, last) > 0.5), reverse=True)[:100]
    q = {"experiment_ids": [eid], "filter": "metrics.m0 > 0.5", "max_results": 100,
         "order_by": ["metrics.m1 DESC"], "run_view_type": "ACTIVE_ONLY"}
    body = json.dumps(q).encode()
    for _ in range(3):  # warm-up
        c.post("/runs/search", body)
    lat, errors, got_m1 = [], 0, None
    for i in range(sz.search_queries):
        t0 = time.perf_counter()
        r = c.post("/runs/search", body, "runs/search (metrics.m0 > 0.5, order metrics.m1 DESC)")
        lat.append((time.perf_counter() - t0) * 1000)
        if r is None:
            errors += 1
        elif got_m1 is None:
            got_m1 = check_search(srv.kind, r, expect, anom)
    note = f"{errors} failed" if errors else ""
    res.put(srv.kind, "s50", f"search_runs p50 (filter metrics.m0 > 0.5, order metrics.m1 DESC, "
            f"max 100; n={sz.search_queries})", "ms", False, pct(lat, 50), note)
    res.put(srv.kind, "s95", "search_runs p95", "ms", False, pct(lat, 95))
    return got_m1 or []


def check_search(kind: str, r: dict, expect: list[float], anom: Anomalies) -> list[float]:
    runs = r.get("runs", [])
    m0, m1 = [], []
    for run in runs:
        ms = {m["key"]: m["value"] for m in run.get("data", {}).get("metrics", [])}
        m0.append(ms.get("m0"))
        m1.append(ms.get("m1"))
    if len(runs) != len(expect):
        anom.add(kind, "runs/search result",
                 f"expected {len(expect)} runs, got {len(runs)}")
    if any(v is None or v <= 0.5 for v in m0):
        anom.add(kind, "runs/search result", "a returned run has metrics.m0 <= 0.5 or missing")
    if [round(v, 6) if v is not None else None for v in m1] != [round(v, 6) for v in expect]:
        anom.add(kind, "runs/search result",
                 f"expected m1 order {expect[:3]}..., got {m1[:3]}...")
    return m1


def w_history(srv: Server, sz: Sizes, res: Results, anom: Anomalies):
    c = Client(srv, anom)
    eid = c.create_experiment("bench-history")
    rid = c.create_run(eid, "history")
    if not rid:
        raise RuntimeError("runs/create failed")
    base_ts = now_ms()
    n = sz.history_points
    t0 = time.perf_counter()
    errs = 0
    for start in range(0, n, 1000):
        ms = [{"key": "loss", "value": 1.0 / (s + 1), "timestamp": base_ts + s, "step": s}
              for s in range(start, min(start + 1000, n))]
        if c.post("/runs/log-batch", {"run_id": rid, "metrics": ms},
                  "runs/log-batch (1000 points, one key)") is None:
            errs += 1
    pop = time.perf_counter() - t0
    res.put(srv.kind, "hpop", f"log {n:,} points of one metric (sequential log-batch x 1000)",
            "s", False, pop, f"{errs} failed" if errs else "")

    def fetch() -> tuple[float, int, int]:
        got, pages, token = 0, 0, None
        t0 = time.perf_counter()
        for _ in range(n // sz.history_page + 10):  # bounded
            p = {"run_id": rid, "metric_key": "loss", "max_results": sz.history_page}
            if token:
                p["page_token"] = token
            r = c.get("/metrics/get-history", p, "metrics/get-history (paged)")
            if r is None:
                break
            got += len(r.get("metrics", []))
            pages += 1
            token = r.get("next_page_token")
            if not token:
                break
        return time.perf_counter() - t0, got, pages

    fetch()  # warm-up (page cache, sqlite cache): we report the second, warm fetch
    dt, got, pages = fetch()
    if got != n:
        anom.add(srv.kind, "metrics/get-history", f"expected {n} points, got {got} in {pages} pages")
    res.put(srv.kind, "hist", f"get-history {n:,} points (pages of {sz.history_page:,}, follow "
            f"next_page_token)", "s", False, dt, f"{pages} pages" if got == n else f"got {got}")


class SizedStream:
    """Iterable with a length: requests sends Content-Length (like mlflow's client does with
    a file) and streams the chunks, never holding the whole body in memory."""

    def __init__(self, total: int, chunk: int = MiB):
        self.total, self.chunk = total, chunk
        rnd = random.Random(42)
        self.base = rnd.randbytes(chunk)

    def __len__(self):
        return self.total

    def __iter__(self) -> Iterator[bytes]:
        sent, i = 0, 0
        while sent < self.total:
            n = min(self.chunk, self.total - sent)
            b = i.to_bytes(8, "little") + self.base[8:n] if n >= 8 else self.base[:n]
            yield b
            sent += n
            i += 1

    def crc(self) -> int:
        c = 0
        for b in self:
            c = zlib.crc32(b, c)
        return c


def w_artifact(srv: Server, sz: Sizes, res: Results, anom: Anomalies):
    size = sz.artifact_bytes
    stream = SizedStream(size)
    want_crc = stream.crc()
    path = f"bench/{uuid.uuid4().hex}/blob.bin"
    url = srv.base + ART_API + "/" + path
    s = new_session(1)
    mib = size / MiB
    label_sz = f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib:g} MiB"

    with RssSampler(srv.proc.pid) as rss:
        t0 = time.perf_counter()
        try:
            r = s.put(url, data=stream, headers={"Content-Type": "application/octet-stream"},
                      timeout=1800)
            ok = r.status_code == 200
            if not ok:
                anom.add(srv.kind, f"PUT {ART_API}/<path> ({label_sz})",
                         f"expected 200, got {r.status_code} {_short(r.content)}")
        except requests.RequestException as e:
            ok = False
            anom.add(srv.kind, f"PUT {ART_API}/<path> ({label_sz})", f"expected 200, got {e!r}")
        up = time.perf_counter() - t0
    res.put(srv.kind, "up", f"artifact upload {label_sz} (PUT, streamed)", "s", False,
            up if ok else float("nan"), "" if ok else "failed")
    res.put(srv.kind, "up_rss", f"server RSS peak during upload", "MiB", False, rss.peak,
            f"before: {rss.start / MiB:,.0f}")
    if not ok:
        return

    with RssSampler(srv.proc.pid) as rss:
        t0 = time.perf_counter()
        got, crc, ok = 0, 0, True
        try:
            with s.get(url, stream=True, timeout=1800) as r:
                if r.status_code != 200:
                    ok = False
                    anom.add(srv.kind, f"GET {ART_API}/<path> ({label_sz})",
                             f"expected 200, got {r.status_code} {_short(r.content)}")
                else:
                    for b in r.iter_content(MiB):
                        got += len(b)
                        crc = zlib.crc32(b, crc)
        except requests.RequestException as e:
            ok = False
            anom.add(srv.kind, f"GET {ART_API}/<path> ({label_sz})", f"expected 200, got {e!r}")
        down = time.perf_counter() - t0
    if ok and (got != size or crc != want_crc):
        anom.add(srv.kind, f"GET {ART_API}/<path> ({label_sz})",
                 f"expected {size} bytes crc32 {want_crc:08x}, got {got} bytes crc32 {crc:08x}")
    res.put(srv.kind, "down", f"artifact download {label_sz} (GET, streamed, discarded)", "s",
            False, down if ok else float("nan"), "" if ok else "failed")
    res.put(srv.kind, "down_rss", f"server RSS peak during download", "MiB", False, rss.peak,
            f"before: {rss.start / MiB:,.0f}")
    # tidy up so the data dir shrinks before the next server starts
    try:
        s.delete(url, timeout=120)
    except requests.RequestException:
        pass
    s.close()


WORKLOADS: list[tuple[str, Callable]] = [
    ("log-batch throughput", w_log_batch),
    ("log-metric latency", w_log_metric),
    ("create-run latency", w_create_run),
    ("search_runs", w_search),
    ("get-history", w_history),
    ("artifacts", w_artifact),
]


# --------------------------------------------------------------------------------------
# machine description


def machine_description(slipway_bin: str, servers: list[str]) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())

    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    sw = "not run"
    if "slipway" in servers:
        try:
            p = subprocess.run([slipway_bin, "--version"], capture_output=True, text=True, timeout=10)
            out = (p.stdout.strip() or p.stderr.strip()).splitlines()
            sw = out[0] if p.returncode == 0 and out else "version unknown"
        except (OSError, subprocess.TimeoutExpired) as e:
            sw = f"unknown ({e.__class__.__name__})"
        sw += f" ({slipway_bin})"
    return [
        f"- machine: {nproc} CPUs (nproc), {cpu}, {mem / 2**30:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, mlflow {ver('mlflow')}, requests {ver('requests')}, "
        f"psutil {ver('psutil')}",
        f"- slipway: {sw}",
    ]


# --------------------------------------------------------------------------------------


def run_server(kind: str, args, sz: Sizes, res: Results, anom: Anomalies, tmp: Path,
               search_fingerprints: dict):
    srv = Server(kind, args.slipway_bin, tmp, args.pg_url if args.backend == "postgres" else None)
    print(f"\n== {kind}: starting ({' '.join(srv.cmd())})", flush=True)
    try:
        srv.start(timeout=180 if kind == "mlflow" else 60)
        print(f"   healthy after {srv.startup_s:.1f} s", flush=True)
        res.put(kind, "startup", "server start until /health = 200", "s", False, srv.startup_s)
        time.sleep(3)  # let it settle before the idle reading
        res.put(kind, "rss_idle", "server RSS idle (after start)", "MiB", False,
                tree_rss(srv.proc.pid))
        for name, fn in WORKLOADS:
            if args.workloads and name not in args.workloads:
                continue
            if not srv.alive():
                anom.add(kind, "server process", f"died before '{name}'\n{srv.log_tail()}")
                break
            print(f"   {name} ...", end="", flush=True)
            t0 = time.perf_counter()
            try:
                out = fn(srv, sz, res, anom)
                if fn is w_search:
                    search_fingerprints[kind] = out
                print(f" {time.perf_counter() - t0:.1f} s", flush=True)
                # What the server keeps once a phase is over: memory it does not give back
                # stays charged to the machine (sampled after 2 s of quiet).
                time.sleep(2)
                res.put(kind, f"rss_after_{name}", f"server RSS after {name}", "MiB", False, tree_rss(srv.proc.pid))
            except Exception as e:  # keep going with the next workload
                print(f" FAILED: {e}", flush=True)
                anom.add(kind, f"workload '{name}'", f"harness exception: {e!r}")
                traceback.print_exc()
        if not srv.alive():
            anom.add(kind, "server process", f"exited with {srv.proc.returncode}\n{srv.log_tail()}")
    finally:
        srv.stop()
        srv.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--only", choices=["mlflow", "slipway"], help="benchmark one server only")
    ap.add_argument("--write-results", action="store_true",
                    help="append a dated section to bench/RESULTS.md")
    ap.add_argument("--workloads", nargs="+", metavar="NAME", choices=[n for n, _ in WORKLOADS],
                    help="run only these workloads (default: all)")
    ap.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN") or
                    str(REPO / "target/release/slipway"))
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite",
                    help="metadata store of both servers (postgres: a fresh database each on --pg-url)")
    ap.add_argument("--pg-url", default=os.environ.get("SLIPWAY_TEST_PG_URL"),
                    help="PostgreSQL admin URI (default $SLIPWAY_TEST_PG_URL, as scripts/postgres.sh exports)")
    args = ap.parse_args()
    if args.backend == "postgres" and not args.pg_url:
        sys.exit("--backend postgres needs --pg-url or SLIPWAY_TEST_PG_URL (. scripts/postgres.sh && slipway_pg_start)")

    servers = [args.only] if args.only else ["mlflow", "slipway"]
    if "slipway" in servers and not os.access(args.slipway_bin, os.X_OK):
        sys.exit(f"slipway binary not found or not executable: {args.slipway_bin} "
                 f"(set SLIPWAY_BIN or --slipway-bin, or use --only mlflow)")
    if "mlflow" in servers and not (REPO / ".venv/bin/mlflow").exists():
        sys.exit(f"{REPO / '.venv/bin/mlflow'} missing (pip install mlflow==3.17.2 into .venv)")

    sz = sizes_for(args.quick)
    mode = ("quick" if args.quick else "full") + (", PostgreSQL" if args.backend == "postgres" else "")
    desc = machine_description(args.slipway_bin, servers)
    if args.backend == "postgres":
        pg = subprocess.run(["psql", args.pg_url, "-XAtc", "SHOW server_version"], capture_output=True, text=True)
        desc.append(f"- metadata store: PostgreSQL {pg.stdout.strip()} on loopback, a fresh database per server "
                    "(mlflow through psycopg 3, SQLAlchemy's default pool)")
    print(f"# Slipway tracking benchmark ({mode})")
    print("\n".join(desc), flush=True)
    load = os.getloadavg()
    print(f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (WARNING: the machine is busy; numbers will be noisy)" if load[0] > 0.7 else ""))
    desc.append(f"- load average before the run: {load[0]:.2f} (1 min)")
    stray = sorted(k for k in os.environ if (k.startswith("SLIPWAY_") and k != "SLIPWAY_BIN")
                   or k.startswith("MLFLOW_"))
    if stray:
        print(f"- note: the servers inherit these environment variables: {', '.join(stray)}")

    res, anom, fps = Results(), Anomalies(), {}
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    t_all = time.perf_counter()
    try:
        for kind in servers:
            run_server(kind, args, sz, res, anom, tmp, fps)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if len(fps) == 2 and fps["mlflow"] and fps["slipway"]:
        a = [round(v, 6) for v in fps["mlflow"] if v is not None]
        b = [round(v, 6) for v in fps["slipway"] if v is not None]
        if a != b:
            anom.add("slipway", "runs/search vs mlflow", "first page differs from mlflow's")

    tbl = table(res, servers)
    notes = anom.summary()
    print(f"\n## Results ({mode}, {time.perf_counter() - t_all:.0f} s wall)\n")
    print(tbl)
    print("\nratio: >1 means slipway is better (throughput: slipway/mlflow; times and memory: "
          "mlflow/slipway)")
    if notes:
        print("\n### Server misbehaviour / anomalies")
        for n in notes:
            print(f"- {n}")

    if args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = REPO / "bench/RESULTS.md"
        section = [f"## {stamp} ({mode}{', only ' + args.only if args.only else ''})", ""]
        section += desc + ["", tbl, "",
                           "ratio: >1 means slipway is better (throughput: slipway/mlflow; "
                           "times and memory: mlflow/slipway)", ""]
        if notes:
            section += ["Anomalies:", ""] + [f"- {n}" for n in notes] + [""]
        prev = out.read_text() if out.exists() else (
            "# Benchmark results\n\nProduced by `bench/tracking_bench.py --write-results`; "
            "newest section last. See bench/README.md for what each row means.\n\n")
        out.write_text(prev.rstrip("\n") + "\n\n" + "\n".join(section))
        print(f"\nappended to {out}")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
