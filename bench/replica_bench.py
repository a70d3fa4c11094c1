"""Read throughput of Slipway with 1 and with 3 replicas on one PostgreSQL database.

Each replica count gets a fresh database, filled through the first replica with the same
runs (params, tags, metric histories). Then client threads send a fixed number of reads each
(get-run, search-runs with a metric filter, get-history, in turn), spreading them round-robin
over the replicas, and the wall time from a common start to the last answer gives requests/s.

Everything (PostgreSQL, the replicas and the load generator) runs on this one machine and
shares its cores: on a 2-core machine more replicas cannot add CPU, so the row shows what
replicas cost or save there, not how they scale across machines. See bench/README.md.

    . scripts/postgres.sh && slipway_pg_start
    .venv/bin/python bench/replica_bench.py [--quick] [--write-results]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking_bench import Server, fresh_pg_database  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
API = "/api/2.0/mlflow"
RUNS, PARAMS, METRICS, STEPS = 50, 20, 10, 20


def populate(url: str) -> tuple[str, list[str]]:
    s = requests.Session()
    exp = s.post(f"{url}{API}/experiments/create", json={"name": "bench"}, timeout=60).json()["experiment_id"]
    runs = []
    for r in range(RUNS):
        run = s.post(f"{url}{API}/runs/create", json={"experiment_id": exp, "start_time": r}, timeout=60).json()
        rid = run["run"]["info"]["run_id"]
        metrics = [{"key": f"m{k}", "value": float(r * k + st), "timestamp": st, "step": st}
                   for k in range(METRICS) for st in range(STEPS)]
        body = {"run_id": rid, "metrics": metrics, "params": [{"key": f"p{p}", "value": str(p * r)} for p in range(PARAMS)],
                "tags": [{"key": "team", "value": f"t{r % 5}"}]}
        assert s.post(f"{url}{API}/runs/log-batch", json=body, timeout=60).status_code == 200
        runs.append(rid)
    return exp, runs


def load(urls: list[str], exp: str, runs: list[str], threads: int, per_thread: int):
    """(requests/s, p50 ms, p95 ms, failures)."""
    barrier = threading.Barrier(threads + 1)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def worker(w: int):
        s = requests.Session()
        mine, bad = [], 0
        barrier.wait()
        for i in range(per_thread):
            url = urls[(w + i) % len(urls)]
            rid = runs[(w * 7 + i) % len(runs)]
            t0 = time.perf_counter()
            kind = i % 3
            if kind == 0:
                r = s.get(f"{url}{API}/runs/get", params={"run_id": rid}, timeout=60)
            elif kind == 1:
                r = s.post(f"{url}{API}/runs/search", json={"experiment_ids": [exp], "max_results": 50,
                                                          "filter": f"metrics.m1 > {i % 40}"}, timeout=60)
            else:
                r = s.get(f"{url}{API}/metrics/get-history", params={"run_id": rid, "metric_key": "m3"}, timeout=60)
            mine.append(time.perf_counter() - t0)
            bad += r.status_code != 200
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker, w) for w in range(threads)]
        barrier.wait()
        t0 = time.perf_counter()
        for f in futures:
            f.result()
        wall = time.perf_counter() - t0
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return len(latencies) / wall, p(0.50), p(0.95), failures[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests (checks the harness)")
    ap.add_argument("--replicas", default="1,3", help="replica counts to compare (default 1,3)")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--pg-url", default=os.environ.get("SLIPWAY_TEST_PG_URL"))
    ap.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN") or str(REPO / "target/release/slipway"))
    ap.add_argument("--write-results", action="store_true", help="append a section to bench/RESULTS.md")
    args = ap.parse_args()
    if not args.pg_url:
        sys.exit("needs --pg-url or SLIPWAY_TEST_PG_URL (. scripts/postgres.sh && slipway_pg_start)")
    per_thread = 60 if args.quick else 600
    counts = [int(c) for c in args.replicas.split(",")]

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="slipway-replica-bench-"))
    try:
        for n in counts:
            db = fresh_pg_database(args.pg_url, "bench_replicas")
            servers = []
            for i in range(n):
                (tmp / f"n{n}-{i}").mkdir(parents=True)
                srv = Server("slipway", args.slipway_bin, tmp / f"n{n}-{i}")
                srv.store_uri = db
                servers.append(srv)
            try:
                for srv in servers:
                    srv.start(timeout=60)
                exp, runs = populate(servers[0].base)
                load([s.base for s in servers], exp, runs, args.threads, 10)  # warm-up
                rps, p50, p95, bad = load([s.base for s in servers], exp, runs, args.threads, per_thread)
                rows.append((n, rps, p50, p95, bad))
                print(f"{n} replica(s): {rps:.0f} requests/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms, {bad} failed",
                      flush=True)
            finally:
                for srv in servers:
                    srv.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0][1]
    pg = subprocess.run(["psql", args.pg_url, "-XAtc", "SHOW server_version"], capture_output=True, text=True)
    head = [
        f"- machine: {os.cpu_count()} cores; PostgreSQL {pg.stdout.strip()}, the replicas and the "
        f"{args.threads} client threads all on it",
        f"- data: {RUNS} runs x ({PARAMS} params, {METRICS} metrics x {STEPS} steps); "
        f"{args.threads} threads x {per_thread} reads (get-run, search-runs, get-history in turn), round-robin",
    ]
    table = ["| replicas | reads/s | p50 ms | p95 ms | failed | vs 1 replica |", "|---|---|---|---|---|---|"]
    table += [f"| {n} | {rps:.0f} | {p50:.1f} | {p95:.1f} | {bad} | {rps / base:.2f}x |" for n, rps, p50, p95, bad in rows]
    print("\n".join([""] + head + [""] + table))
    if args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = REPO / "bench/RESULTS.md"
        section = [f"## {stamp} (read throughput, 1 vs 3 replicas on PostgreSQL{', quick' if args.quick else ''})",
                   ""] + head + [""] + table + [""]
        out.write_text(out.read_text().rstrip("\n") + "\n\n" + "\n".join(section))
        print(f"\nappended to {out}")
    return 1 if any(r[4] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
