#!/usr/bin/env python3
"""Side-by-side benchmark: `slipway data add/get` vs `dvc add` + `dvc push` / `dvc pull`.

Usage (from the repository root, on a quiet machine, with a release build):

    .venv/bin/python bench/data_bench.py --slipway-bin target/release/slipway [--quick] [--write-results]

Two folders, written once with random bytes: 10,000 files of 4 KiB, and 1 GiB in 16 files of
64 MiB. For each, both tools store it (slipway: `data add` to a local `slipway server` whose
artifact root is a local folder; dvc: `dvc add` then `dvc push` to a local remote folder), store
it again unchanged, and bring it back into an empty place (slipway: `data get`; dvc: `dvc pull`
with its cache emptied). Each figure is the wall time of the client command(s) and the peak
resident memory of the client process (GNU time's %M); the slipway server's resident memory is
given beside it. Every fetched tree is compared byte for byte with the original. DVC (pinned in
bench/requirements-dvc.txt) is installed into `.venv-dvc` on first use.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import DVC_VENV, default_bin, ensure_dvc_env, machine_description, pin_binary  # noqa: E402
from tracking_bench import REPO, Server  # noqa: E402

import psutil  # noqa: E402

MiB = 1024 * 1024


def timed(argv: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    """Wall seconds, the client's peak RSS in KiB, and its stderr's tail; fails on a non-zero exit."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=cwd, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {p.stderr[-1500:]}")
    peak = int(p.stderr.strip().splitlines()[-1])
    return secs, peak, p.stderr


def write_many(root: Path, n: int, size: int):
    root.mkdir(parents=True)
    for i in range(n):
        sub = root / f"d{i % 100:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def write_big(root: Path, files: int, size: int):
    root.mkdir(parents=True)
    for i in range(files):
        with open(root / f"part{i:02d}.bin", "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def rss_kib(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) // 1024
    except psutil.Error:
        return 0


def bench_slipway(binary: str, src: Path, tmp: Path, name: str) -> dict:
    tmp.mkdir(parents=True)
    server = Server("slipway", binary, tmp)
    server.start(60)
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.base}
    try:
        add, add_mem, _ = timed([binary, "data", "add", name, str(src)], tmp, env)
        again, again_mem, _ = timed([binary, "data", "add", name, str(src)], tmp, env)
        dest = tmp / f"{name}-back"
        get, get_mem, _ = timed([binary, "data", "get", name, str(dest)], tmp, env)
        ok = same_tree(src, dest / src.name)
        server_rss = rss_kib(server.proc.pid)
    finally:
        server.stop()
    return {"add": (add, add_mem), "again": (again, again_mem), "get": (get, get_mem), "ok": ok,
            "server_rss": server_rss}


def bench_dvc(src: Path, tmp: Path) -> dict:
    dvc = str(DVC_VENV / "bin/dvc")
    project = tmp / "dvc-project"
    project.mkdir(parents=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site"),
           "DVC_GLOBAL_CONFIG_DIR": str(tmp / "dvc-global"), "DVC_SYSTEM_CONFIG_DIR": str(tmp / "dvc-system")}
    shutil.copytree(src, project / src.name)
    for argv in (["init", "--no-scm"], ["remote", "add", "-d", "local", str(tmp / "dvc-remote")]):
        subprocess.run([dvc, *argv], cwd=project, env=env, check=True, capture_output=True)
    a1, m1, _ = timed([dvc, "add", src.name], project, env)
    a2, m2, _ = timed([dvc, "push"], project, env)
    r1, n1, _ = timed([dvc, "add", src.name], project, env)
    r2, n2, _ = timed([dvc, "push"], project, env)
    shutil.rmtree(project / src.name)
    shutil.rmtree(project / ".dvc" / "cache")
    g, gm, _ = timed([dvc, "pull"], project, env)
    ok = same_tree(src, project / src.name)
    return {"add": (a1 + a2, max(m1, m2)), "again": (r1 + r2, max(n1, n2)), "get": (g, gm), "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slipway-bin", default=default_bin())
    ap.add_argument("--quick", action="store_true", help="1,000 files and 128 MiB")
    ap.add_argument("--write-results", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    ensure_dvc_env()
    tmp = Path(tempfile.mkdtemp(prefix="data-bench-"))
    binary = pin_binary(args.slipway_bin, tmp)
    many, big = (1000, 2) if args.quick else (10_000, 16)
    workloads = []
    src_many = tmp / "src" / "many"
    write_many(src_many, many, 4096)
    workloads.append((f"{many:,} files of 4 KiB", src_many, "many"))
    src_big = tmp / "src" / "big"
    write_big(src_big, big, 64 * MiB)
    workloads.append((f"{big * 64} MiB in {big} files", src_big, "big"))
    rows, failed = [], False
    for label, src, name in workloads:
        d = bench_dvc(src, tmp / f"dvc-{name}")
        s = bench_slipway(binary, src, tmp / f"slipway-{name}", name)
        failed |= not (d["ok"] and s["ok"])
        for step, what in (("add", "add (dvc add + dvc push)"), ("again", "re-add unchanged"), ("get", "get (dvc pull, empty cache)")):
            (dt, dm), (st, sm) = d[step], s[step]
            rows.append(f"| {label} | {what} | {dt:.2f} s, {dm // 1024} MiB | {st:.2f} s, {sm // 1024} MiB "
                        f"| {dt / st:.1f}x | server {s['server_rss'] // 1024} MiB |")
        print(rows[-3:], flush=True)
    header = ["| workload | step | dvc 3.67.1 (time, client peak RSS) | slipway (time, client peak RSS) | speed-up | |",
              "|---|---|---|---|---|---|"]
    table = "\n".join(header + rows)
    print(table)
    if not failed and args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"\n## {stamp} data versions vs dvc (bench/data_bench.py{' --quick' if args.quick else ''})\n", ""]
        lines += machine_description(binary) + ["", table, ""]
        with open(REPO / "bench/RESULTS.md", "a") as f:
            f.write("\n".join(lines))
    shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("a fetched tree differed from the original", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
