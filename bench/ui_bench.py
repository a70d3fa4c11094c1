#!/usr/bin/env python3
"""The MLflow UI at scale: `mlflow server` and `slipway server`, side by side, serving the same
UI bundle (the mlflow 3.17.2 wheel's) on the same data, timed in Debian's Chromium.

Two workloads, each loaded the same way into both servers over REST:
- runs table: an experiment of 20,000 runs (2 params, 2 metrics each); time from navigating to
  the experiment's runs page until its first run rows are on screen;
- chart: 10 runs with a 100,000-step metric each; time from navigating to the experiment's chart
  view until every run's line is drawn (plotly traces in the metric's chart).
Each is timed in a new tab of a browser that has loaded the page once (its HTTP cache holds the
bundle, as a returning user's does; the data is fetched anew), `--reps` times; medians are reported with
ratios (mlflow / slipway: > 1 means Slipway is faster). The aim (issue 15) is under 1 s each.

    .venv/bin/python bench/ui_bench.py [--quick] [--write-results] [--slipway-bin target/release/slipway]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking_bench import REPO, Anomalies, Client, Server, new_session, now_ms  # noqa: E402

from playwright.sync_api import sync_playwright  # noqa: E402

ML = "workflowType=machine_learning"


def populate_runs(srv: Server, anom: Anomalies, runs: int, threads: int = 8) -> str:
    c = Client(srv, anom)
    eid = c.create_experiment("ui-table")
    local = threading.local()

    def one(i: int):
        if not hasattr(local, "c"):
            local.c = Client(srv, anom, new_session(1))
        rid = local.c.create_run(eid, f"run-{i}")
        if rid:
            local.c.post("/runs/log-batch", {
                "run_id": rid,
                "params": [{"key": "lr", "value": str(0.001 * (i % 100))}, {"key": "depth", "value": str(i % 12)}],
                "metrics": [{"key": "loss", "value": 1.0 / (1 + i % 97), "timestamp": now_ms(), "step": 0},
                            {"key": "accuracy", "value": (i % 89) / 89, "timestamp": now_ms(), "step": 0}],
            }, "log-batch (populate)")

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, range(runs)))
    return eid


def populate_chart(srv: Server, anom: Anomalies, runs: int, points: int, threads: int = 4) -> str:
    c = Client(srv, anom)
    eid = c.create_experiment("ui-chart")
    ids = [c.create_run(eid, f"curve-{r}") for r in range(runs)]
    base = now_ms()

    def batch(job):
        r, start = job
        cl = Client(srv, anom, new_session(1))
        end = min(points, start + 1000)
        cl.post("/runs/log-batch", {"run_id": ids[r], "metrics": [
            {"key": "loss", "value": 1.0 / (1 + s) + 0.01 * ((s * 7919 + r) % 13), "timestamp": base + s, "step": s}
            for s in range(start, end)
        ]}, "log-batch (chart)")

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(batch, [(r, s) for r in range(runs) for s in range(0, points, 1000)]))
    return eid


def time_page(ctx, url: str, ready_js: str, data_call: str, timeout_s: float = 120) -> tuple[float, float]:
    """Seconds from navigating a new tab to `url` until `ready_js` holds, and until the bundle
    first asked for `data_call` (what it spends starting up, whichever server answers). The
    context keeps its HTTP cache, as a returning user's browser does: the bundle's hashed files
    are cached (both servers send them cacheable), the data is fetched anew."""
    page = ctx.new_page()
    asked: list[float] = []
    try:
        t0 = time.perf_counter()
        page.on("request", lambda r: asked.append(time.perf_counter() - t0) if data_call in r.url else None)
        page.goto(url)
        page.wait_for_function(ready_js, timeout=timeout_s * 1000, polling=20)
        return time.perf_counter() - t0, (asked[0] if asked else float("nan"))
    finally:
        page.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 runs; 10 x 10,000 points")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--slipway-bin", default=str(REPO / "target/release/slipway"))
    ap.add_argument("--only", choices=["mlflow", "slipway"])
    args = ap.parse_args()
    runs, chart_runs, points = (2_000, 10, 10_000) if args.quick else (20_000, 10, 100_000)
    # Both servers find the same UI bundle: mlflow's own, and Slipway through $VIRTUAL_ENV.
    os.environ.setdefault("VIRTUAL_ENV", str(REPO / ".venv"))
    anom = Anomalies()
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    kinds = [args.only] if args.only else ["mlflow", "slipway"]
    rows_ready = "() => [...document.querySelectorAll('[role=row]')].filter(r => /run-\\d+/.test(r.textContent)).length >= 5"
    chart_ready = (f"() => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= {chart_runs}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for kind in kinds:
            srv = Server(kind, args.slipway_bin, tmp)
            srv.start(120)
            try:
                t0 = time.perf_counter()
                table_eid = populate_runs(srv, anom, runs)
                chart_eid = populate_chart(srv, anom, chart_runs, points)
                print(f"{kind}: loaded in {time.perf_counter() - t0:.0f} s", flush=True)
                table_url = f"{srv.base}/#/experiments/{table_eid}/runs?{ML}"
                chart_url = f"{srv.base}/#/experiments/{chart_eid}/runs?{ML}&compareRunsMode=CHART"
                ctx = browser.new_context(viewport={"width": 1400, "height": 900})
                time_page(ctx, table_url, rows_ready, "runs/search")  # warm-up: the browser's cache, the server's
                time_page(ctx, chart_url, chart_ready, "get-history-bulk-interval")
                table = [time_page(ctx, table_url, rows_ready, "runs/search") for _ in range(args.reps)]
                chart = [time_page(ctx, chart_url, chart_ready, "get-history-bulk-interval") for _ in range(args.reps)]
                ctx.close()
                results[kind] = {
                    "table": statistics.median(t for t, _ in table),
                    "table_ask": statistics.median(a for _, a in table),
                    "chart": statistics.median(t for t, _ in chart),
                    "chart_ask": statistics.median(a for _, a in chart),
                }
                print(f"{kind}: runs table {results[kind]['table']:.3f} s, chart {results[kind]['chart']:.3f} s", flush=True)
            finally:
                srv.stop()
        browser.close()

    def cell(kind, key):
        return f"{results[kind][key]:.3f} s" if kind in results else "not run"

    def ratio(key):
        if "mlflow" in results and "slipway" in results:
            return f"{results['mlflow'][key] / results['slipway'][key]:.1f}x"
        return "n/a"

    lines = [
        f"### UI at scale ({'quick' if args.quick else 'full'}), {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"Debian {os.popen('/usr/bin/chromium --version 2>/dev/null').read().strip()}, headless, a new tab per load "
        "(the bundle in the browser's cache), "
        f"median of {args.reps}; the mlflow 3.17.2 wheel's UI on both; slipway `{args.slipway_bin}`.",
        "",
        "| page | mlflow server | slipway server | ratio |",
        "|---|---|---|---|",
        f"| runs table: experiment of {runs:,} runs, first rows on screen | {cell('mlflow', 'table')} | {cell('slipway', 'table')} | {ratio('table')} |",
        f"| chart: {chart_runs} runs x {points:,} steps, every line drawn | {cell('mlflow', 'chart')} | {cell('slipway', 'chart')} | {ratio('chart')} |",
        f"| of which the bundle starting, until it sends runs/search (runs table) | {cell('mlflow', 'table_ask')} | {cell('slipway', 'table_ask')} | n/a |",
        f"| of which the bundle starting, until it sends get-history-bulk-interval (chart) | {cell('mlflow', 'chart_ask')} | {cell('slipway', 'chart_ask')} | n/a |",
        "",
        "ratio: mlflow / slipway (>1 means slipway is faster)",
    ]
    if "slipway" in results:
        for key, what in [("table", "runs table"), ("chart", "chart")]:
            v = results["slipway"][key]
            lines.append(f"- aim, {what} under 1 s: {'met' if v < 1 else 'NOT met'} ({v:.3f} s)")
    problems = anom.summary()
    if problems:
        lines += ["", "anomalies:"] + [f"- {a}" for a in problems]
    text = "\n".join(lines)
    print("\n" + text)
    if args.write_results:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
