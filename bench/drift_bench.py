"""Drift report on 1,000,000 x 20 mixed columns: `slipway drift` against Evidently 0.7.23.

Both tools get the same reference and current files (Parquet, and CSV with --formats) and
produce their full report: slipway `drift --json` (release build, SLIPWAY_BIN), Evidently
`Report([DataDriftPreset()]).run(...)` in its own environment (.venv-evidently, made by
scripts/evidently-env.sh) through tests/compat/tools/evidently_drift.py. Each run is timed from
process start to exit, and its peak RSS is the largest sum over the process tree, sampled
every 20 ms with psutil.

    cargo build --release -p slipway
    scripts/evidently-env.sh
    SLIPWAY_BIN=target/release/slipway .venv/bin/python bench/drift_bench.py [--write-results]
"""

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
EVIDENTLY_PY = REPO / ".venv-evidently" / "bin" / "python"
EVIDENTLY_TOOL = REPO / "tests" / "compat" / "tools" / "evidently_drift.py"


def make(rng, n, drift):
    """20 columns: 10 floats (2 with nulls and infinities), 3 wide integers, 2 few-valued
    floats, 3 string categories, 1 binary string, 1 small-integer category."""
    s = 0.15 if drift else 0.0
    cols = {}
    for i in range(10):
        x = rng.normal(i + (s if i % 2 == 0 else 0.0), 1.0 + i / 10, n)
        if i >= 8:
            x[rng.random(n) < 0.03] = np.nan
            x[rng.random(n) < 0.001] = np.inf
        cols[f"f{i}"] = x
    for i in range(3):
        cols[f"w{i}"] = rng.integers(0, 1000 + (int(100 * s) if i == 0 else 0), n)
    for i in range(2):
        cols[f"few{i}"] = rng.choice([0.5, 1.5, 2.5, 3.5], n, p=[0.4, 0.3, 0.2 - s / 2, 0.1 + s / 2])
    cities = np.array([f"city_{k}" for k in range(50)])
    for i in range(3):
        w = np.linspace(1, 2 + (s * 10 if i == 0 else 0), 50)
        cols[f"c{i}"] = rng.choice(cities, n, p=w / w.sum())
    cols["flag"] = rng.choice(["yes", "no"], n, p=[0.7 - s, 0.3 + s])
    cols["tier"] = rng.integers(0, 5, n)
    return pd.DataFrame(cols)


def measure(cmd):
    """Wall seconds and peak RSS (bytes) of a command's whole process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [root] + root.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak


def mib(b):
    return f"{b / 2**20:,.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--formats", default="parquet", help="comma-separated: parquet,csv")
    ap.add_argument("--write-results", action="store_true", help="append a '## Drift' section to bench/RESULTS.md")
    args = ap.parse_args()
    slipway = os.environ.get("SLIPWAY_BIN") or str(REPO / "target" / "release" / "slipway")
    if not Path(slipway).exists():
        sys.exit(f"no slipway binary at {slipway}: cargo build --release -p slipway")
    if not EVIDENTLY_PY.exists():
        sys.exit("no .venv-evidently: run scripts/evidently-env.sh")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(42)
        ref_df, cur_df = make(rng, args.rows, False), make(rng, args.rows, True)
        for fmt in args.formats.split(","):
            ref, cur = Path(tmp) / f"ref.{fmt}", Path(tmp) / f"cur.{fmt}"
            if fmt == "parquet":
                ref_df.to_parquet(ref, index=False)
                cur_df.to_parquet(cur, index=False)
            else:
                ref_df.to_csv(ref, index=False)
                cur_df.to_csv(cur, index=False)
            size = ref.stat().st_size + cur.stat().st_size
            print(f"{fmt}: {args.rows:,} rows x {ref_df.shape[1]} columns, {mib(size)} on disk", flush=True)
            s_wall, s_rss = measure([slipway, "drift", "--reference", str(ref), "--current", str(cur), "--json"])
            print(f"  slipway   {s_wall:8.2f} s  {mib(s_rss)}", flush=True)
            e_wall, e_rss = measure([str(EVIDENTLY_PY), str(EVIDENTLY_TOOL), str(ref), str(cur), "--no-verdicts"])
            print(f"  evidently {e_wall:8.2f} s  {mib(e_rss)}", flush=True)
            print(f"  ratio: {e_wall / s_wall:.1f}x faster, {e_rss / s_rss:.1f}x less memory", flush=True)
            rows.append((fmt, size, s_wall, e_wall, s_rss, e_rss))

    if args.write_results:
        load = os.getloadavg()[0]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        version = subprocess.run([slipway, "--version"], capture_output=True, text=True).stdout.strip()
        lines = [
            "",
            f"## Drift ({now})",
            "",
            f"Produced by `bench/drift_bench.py --write-results --rows {args.rows} --formats {args.formats}`.",
            f"Reference and current: {args.rows:,} rows x 20 columns each (10 float incl. 2 with nulls and inf, "
            "3 wide integer, 2 few-valued float, 3 string with 50 categories, 1 binary string, 1 small-integer category), "
            "current shifted on 9 of them. Whole process, start to exit; peak RSS of the process tree, sampled every 20 ms.",
            "",
            f"- machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, {platform.platform()}; "
            f"load average before: {load:.2f}",
            f"- slipway: {version} ({slipway}); evidently 0.7.23 (DataDriftPreset, new API) in .venv-evidently",
            "",
            "| files | on disk | evidently time | slipway time | faster | evidently peak RSS | slipway peak RSS | less memory |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for fmt, size, s_wall, e_wall, s_rss, e_rss in rows:
            lines.append(
                f"| {fmt} | {mib(size)} | {e_wall:.2f} s | {s_wall:.2f} s | {e_wall / s_wall:.1f}x "
                f"| {mib(e_rss)} | {mib(s_rss)} | {e_rss / s_rss:.1f}x |"
            )
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n".join(lines) + "\n")
        print("appended to bench/RESULTS.md")


if __name__ == "__main__":
    main()
