"""How fast `slipway import mlflow` moves an MLflow history, side by side with MLflow storing it.

An MLflow SQLite database is filled through MLflow's own store (`SqlAlchemyStore`, in process,
no server: the fastest way MLflow writes), R runs x K metric keys x S steps, with params, tags
and F artifact files per run laid out as `mlflow server --artifacts-destination` does. Then:

- `slipway import mlflow` into an empty SQLite data directory (and, with `--pg-url`, into an
  empty PostgreSQL database), artifacts included;
- the same import again, which finds everything unchanged.

The MLflow column is the time MLflow took to store the same history; the ratio says how many
times faster the import is than that. Usage:

    CARGO_TARGET_DIR=/work/target-bench cargo build --release -p slipway
    SLIPWAY_BIN=/work/target-bench/release/slipway .venv/bin/python bench/import_bench.py --quick
    .venv/bin/python bench/import_bench.py --pg-url "$SLIPWAY_TEST_PG_URL" --write-results
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIZES = {
    "full": {"runs": 1000, "keys": 4, "steps": 250, "files": 2, "file_kib": 64},
    "quick": {"runs": 50, "keys": 2, "steps": 200, "files": 2, "file_kib": 16},
}


def populate(db_path: Path, art_root: Path, size: dict) -> float:
    """Fills an MLflow database with its own store; returns the seconds it took."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.entities import Metric, Param, RunStatus, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db_path}", "mlflow-artifacts:")
    payload = os.urandom(size["file_kib"] * 1024)
    t0 = time.perf_counter()
    exp = store.create_experiment("import-bench")
    points = [(k, s) for k in range(size["keys"]) for s in range(size["steps"])]
    for i in range(size["runs"]):
        run = store.create_run(exp, "bench", 1_700_000_000_000 + i, [RunTag("mlflow.runName", f"run-{i}")],
                               f"run-{i}")
        rid = run.info.run_id
        params = [Param(f"p{j}", str(i * j)) for j in range(5)]
        store.log_batch(rid, [], params, [RunTag("stage", "bench")])
        for start in range(0, len(points), 1000):
            batch = [Metric(f"m{k}", (k + 1) * s / (i + 1), 1_700_000_000_000 + s, s) for k, s in points[start:start + 1000]]
            store.log_batch(rid, batch, [], [])
        store.update_run_info(rid, RunStatus.FINISHED, 1_700_000_100_000 + i, f"run-{i}")
        folder = art_root / exp / rid / "artifacts"
        folder.mkdir(parents=True)
        for f in range(size["files"]):
            (folder / f"file-{f}.bin").write_bytes(payload)
    return time.perf_counter() - t0


def run_import(binary: str, source: Path, art_root: Path, target: list[str]) -> tuple[float, dict]:
    argv = [binary, "import", "mlflow", "--from", f"sqlite:///{source}", "--artifacts-from", str(art_root),
            "--json", *target]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"import failed ({p.returncode}): {p.stderr[-2000:]}")
    return elapsed, json.loads(p.stdout)


def fresh_pg(admin: str) -> str:
    name = f"import_bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", admin, "-qXc", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN", str(REPO / "target/release/slipway")))
    ap.add_argument("--pg-url", help="also import into a fresh database on this PostgreSQL server")
    ap.add_argument("--write-results", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    n_points = size["runs"] * size["keys"] * size["steps"]
    n_files = size["runs"] * size["files"]
    mib = n_files * size["file_kib"] / 1024

    tmp = Path(tempfile.mkdtemp(prefix="import-bench-"))
    try:
        source, art = tmp / "mlflow.db", tmp / "mlartifacts"
        print(f"populating MLflow: {size['runs']} runs, {n_points:,} points, {n_files} files ...", file=sys.stderr)
        mlflow_s = populate(source, art, size)
        targets = [("SQLite", ["--data-dir", str(tmp / "slipway")])]
        if args.pg_url:
            targets.append(("PostgreSQL", ["--data-dir", str(tmp / "slipway-pg"), "--backend-store-uri",
                                           fresh_pg(args.pg_url)]))
        rows = []
        for label, target in targets:
            first_s, first = run_import(args.slipway_bin, source, art, target)
            again_s, again = run_import(args.slipway_bin, source, art, target)
            assert first["runs"]["created"] == size["runs"] and first["metric_points"] == n_points, first
            assert first["artifact_files_copied"] == n_files, first
            assert again["runs"]["unchanged"] == size["runs"] and again["artifact_files_copied"] == 0, again
            rows.append((f"import into {label}: {size['runs']:,} runs, {n_points:,} points, {n_files:,} files "
                         f"({mib:.0f} MiB)", f"{mlflow_s:.2f} s (storing it)", f"{first_s:.2f} s",
                         f"{mlflow_s / first_s:.2f}x"))
            rows.append((f"  points/s", f"{n_points / mlflow_s:,.0f}", f"{n_points / first_s:,.0f}", ""))
            rows.append((f"  the same import again (all unchanged, no file copied)", "", f"{again_s:.2f} s", ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    version = subprocess.run([args.slipway_bin, "--version"], capture_output=True, text=True).stdout.strip()
    import mlflow

    lines = [
        f"## {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC (import, {'quick' if args.quick else 'full'})",
        "",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}",
        f"- mlflow {mlflow.__version__} (SqlAlchemyStore on SQLite, in process); {version} ({args.slipway_bin})",
        "",
        "| workload | mlflow | slipway import | ratio |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    print("\n".join(lines))
    if args.write_results:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
