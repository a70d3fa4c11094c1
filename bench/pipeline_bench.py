#!/usr/bin/env python3
"""Side-by-side benchmark: Slipway pipelines (`slipway run`) vs DVC (`dvc repro`).

Usage (from the repository root):

    .venv/bin/python bench/pipeline_bench.py [--quick] [--write-results]

Both tools get the same generated DAGs of trivial steps (`sh -c 'cat IN... > OUT'`), so
what is measured is each tool's own overhead: planning, a no-op rerun, a first full run, and
parallel steps. DVC (pinned in bench/requirements-dvc.txt) is installed into `.venv-dvc` on
first use. Every run's outputs are checked; anything unexpected is listed under anomalies and
the exit status is 1. See bench/README.md ("Pipeline benchmark").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.dont_write_bytecode = True  # importing tracking_bench must not leave bench/__pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking_bench import REPO, Anomalies, Server  # noqa: E402  (no import-time side effects)

import psutil  # noqa: E402  (checked by tracking_bench's import)
import yaml  # noqa: E402  (PyYAML comes with mlflow)

DVC_REQ = REPO / "bench/requirements-dvc.txt"
DVC_VENV = REPO / ".venv-dvc"
MiB = 1024 * 1024

# --------------------------------------------------------------------------------------
# sizes


@dataclass
class Sizes:
    layers: int = 10             # big layered DAG: layers x width steps
    width: int = 100
    chain_plan: int = 1000       # a chain planned only (row 1b)
    chain_run: int = 100         # first full run, --jobs 1 (per-step overhead)
    par_steps: int = 8           # independent `sleep` steps
    par_sleep: float = 1.0
    par_jobs: int = 4
    reps_plan: int = 5
    reps_noop: int = 5
    reps_cold: int = 3           # first full runs of the chain (fresh project + server each)
    reps_par: int = 3
    bare_n: int = 50             # bare `sh -c 'cat a > b'` starts timed for the baseline
    full_limit_s: float = 300    # a first full run of the big DAG is stopped after this

    @property
    def big(self) -> int:
        return self.layers * self.width


def sizes_for(quick: bool) -> Sizes:
    if not quick:
        return Sizes()
    return Sizes(layers=4, width=50, chain_plan=200, chain_run=20, par_steps=4,
                 reps_plan=3, reps_noop=3, reps_cold=2, reps_par=1, bare_n=20)


# --------------------------------------------------------------------------------------
# the DAGs


@dataclass
class Step:
    name: str
    cmd: str
    deps: list[str]
    outs: list[str]
    expect: dict[str, bytes]     # out path -> content it must have after the run


@dataclass
class Dag:
    kind: str
    steps: list[Step]
    inputs: dict[str, bytes]     # files written before the run

    @property
    def edges(self) -> set[tuple[str, str]]:
        producer = {o: s.name for s in self.steps for o in s.outs}
        return {(producer[d], s.name) for s in self.steps for d in s.deps if d in producer}

    def upstream(self) -> dict[str, set[str]]:
        up: dict[str, set[str]] = {s.name: set() for s in self.steps}
        for a, b in self.edges:
            up[b].add(a)
        return up


def _cat_step(name: str, deps: list[str], contents: dict[str, bytes]) -> Step:
    out = f"out/{name}.txt"
    contents[out] = b"".join(contents[d] for d in deps)
    return Step(name, f"sh -c 'cat {' '.join(deps)} > {out}'", deps, [out], {out: contents[out]})


def layered_dag(layers: int, width: int, salt: str, seed: int = 17) -> Dag:
    """layers x width steps; layer 0 reads one input file each, every later step 1-3 outs of
    the layer before (fixed seed, so both tools and every repetition get the same DAG)."""
    rnd = random.Random(seed)
    inputs = {f"in/{j:04d}.txt": f"in {j} {salt}\n".encode() for j in range(1, width + 1)}
    contents = dict(inputs)
    steps: list[Step] = []
    prev: list[str] = list(inputs)
    for k in range(layers):
        cur = []
        for j in range(width):
            name = f"s{k * width + j + 1:04d}"
            deps = [prev[j]] if k == 0 else sorted(rnd.sample(prev, rnd.randint(1, 3)))
            st = _cat_step(name, deps, contents)
            steps.append(st)
            cur.append(st.outs[0])
        prev = cur
    return Dag(f"layered {layers} x {width}", steps, inputs)


def chain_dag(n: int, salt: str) -> Dag:
    inputs = {"in/0001.txt": f"in 1 {salt}\n".encode()}
    contents = dict(inputs)
    steps, prev = [], "in/0001.txt"
    for i in range(1, n + 1):
        st = _cat_step(f"s{i:04d}", [prev], contents)
        steps.append(st)
        prev = st.outs[0]
    return Dag(f"chain of {n}", steps, inputs)


def sleep_dag(n: int, secs: float, salt: str) -> Dag:
    steps = []
    for i in range(1, n + 1):
        out = f"out/p{i:02d}.txt"
        body = f"p{i} {salt}"
        steps.append(Step(f"p{i:02d}", f"sh -c 'sleep {secs:g} && echo {body} > {out}'", [], [out],
                          {out: (body + "\n").encode()}))
    return Dag(f"{n} independent steps", steps, {})


def _ylist(xs: list[str]) -> str:
    return "[" + ", ".join(xs) + "]"


def write_project(dag: Dag, root: Path, tool: str, name: str):
    """The DAG as slipway.yaml or dvc.yaml in a fresh folder, inputs written, out/ created."""
    root.mkdir(parents=True)
    (root / "in").mkdir()
    (root / "out").mkdir()
    for p, b in dag.inputs.items():
        (root / p).write_bytes(b)
    lines = [f"pipeline: {name}", "steps:"] if tool == "slipway" else ["stages:"]
    for s in dag.steps:
        lines.append(f"  {s.name}:")
        lines.append(f"    cmd: {s.cmd}")
        if s.deps:
            lines.append(f"    deps: {_ylist(s.deps)}")
        lines.append(f"    outs: {_ylist(s.outs)}")
    (root / ("slipway.yaml" if tool == "slipway" else "dvc.yaml")).write_text("\n".join(lines) + "\n")


def check_outs(dag: Dag, root: Path, tool: str, what: str, anom: Anomalies) -> bool:
    bad = []
    for s in dag.steps:
        for p, want in s.expect.items():
            try:
                got = (root / p).read_bytes()
            except OSError as e:
                bad.append(f"{p}: {e.strerror}")
                continue
            if got != want:
                bad.append(f"{p}: {len(got)} bytes, expected {len(want)} ({got[:40]!r} vs {want[:40]!r})")
    if bad:
        anom.add(tool, f"{what}: outputs", f"{len(bad)} of {sum(len(s.expect) for s in dag.steps)} "
                 f"wrong or missing, e.g. {'; '.join(bad[:3])}")
    return not bad


def tree_files(*paths: Path) -> tuple[int, int]:
    n = size = 0
    for base in paths:
        if base.is_file():
            n, size = n + 1, size + base.stat().st_blocks * 512
            continue
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                try:
                    st = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                n, size = n + 1, size + st.st_blocks * 512
    return n, size


# --------------------------------------------------------------------------------------
# running the tools


@dataclass
class Proc:
    rc: int
    secs: float
    out: str
    err: str
    timed_out: bool = False


def run_timed(argv: list[str], cwd: Path, env: dict, timeout: float) -> Proc:
    """Runs argv in its own process group, wall time from spawn to exit. Dirty pages are
    flushed first, so neither tool's fsyncs wait on what the other (or the set-up) wrote."""
    os.sync()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        secs = time.perf_counter() - t0
        return Proc(p.returncode, secs, out.decode(errors="replace"), err.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        secs = time.perf_counter() - t0
        # Ctrl-C first (dvc then releases its locks and writes what it has), then SIGKILL
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        out, err = p.communicate()
        return Proc(p.returncode, secs, out.decode(errors="replace"),
                    err.decode(errors="replace"), timed_out=True)


def _tail(s: str, n: int = 400) -> str:
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


class Slipway:
    name = "slipway"

    def __init__(self, binary: str, tmp: Path):
        self.bin, self.tmp = binary, tmp
        self.srv: Server | None = None

    def start_server(self):
        self.srv = Server("slipway", self.bin, self.tmp)
        self.srv.start(timeout=60)

    def stop_server(self):
        if self.srv:
            self.srv.stop()
            self.srv.cleanup()
            self.srv = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        if self.srv:
            env["MLFLOW_TRACKING_URI"] = self.srv.base
        return env

    def init(self, root: Path):
        pass

    def plan(self, root: Path, timeout: float) -> Proc:
        return run_timed([self.bin, "pipelines", "show", str(root), "--json"], root, self.env(), timeout)

    def run(self, root: Path, timeout: float, jobs: int = 1) -> Proc:
        return run_timed([self.bin, "run", str(root), "--jobs", str(jobs), "--json"], root, self.env(), timeout)

    def check_plan(self, p: Proc, dag: Dag, anom: Anomalies, what: str):
        if p.rc != 0:
            anom.add(self.name, what, f"exit {p.rc}: {_tail(p.err)}")
            return
        try:
            steps = json.loads(p.out)["steps"]
            order = [s["name"] for s in steps]
            needs = {s["name"]: set(s["needs"]) for s in steps}
        except (ValueError, KeyError, TypeError) as e:
            anom.add(self.name, what, f"expected JSON with steps[].name/needs, got {e!r}: {_tail(p.out)}")
            return
        if sorted(order) != sorted(s.name for s in dag.steps) or needs != dag.upstream():
            anom.add(self.name, what, "steps or their needs differ from the generated DAG")
        pos = {n: i for i, n in enumerate(order)}
        if any(pos[u] > pos[n] for n, us in needs.items() for u in us if u in pos):
            anom.add(self.name, what, "steps not in run order (a step before what it needs)")

    def check_run(self, p: Proc, dag: Dag, anom: Anomalies, what: str, want: str) -> bool:
        """want: 'finished' (every step done) or 'up_to_date' (every step cached)."""
        if p.timed_out:
            anom.add(self.name, what, f"killed after {p.secs:.0f} s")
            return False
        try:
            j = json.loads(p.out)
            status, steps = j["status"], j["steps"]
        except (ValueError, KeyError, TypeError):
            anom.add(self.name, what, f"exit {p.rc}, expected a JSON summary, got {_tail(p.out)} "
                     f"stderr {_tail(p.err)}")
            return False
        state = "done" if want == "finished" else "cached"
        wrong = [f"{n}: {s.get('state')}" for n, s in steps.items() if s.get("state") != state]
        if p.rc != 0 or status != want or len(steps) != len(dag.steps) or wrong:
            anom.add(self.name, what, f"exit {p.rc}, status {status!r} (expected {want!r}), "
                     f"{len(steps)} steps, not {state}: {wrong[:3]} {_tail(p.err, 200)}")
            return False
        return True

    def state_paths(self, root: Path) -> list[Path]:
        return [root / ".slipway"] + ([self.srv.data_dir] if self.srv else [])


def lock_file_ok(name: str, text: str) -> bool:
    """Whether dvc.lock / .dvc/tmp/rwlock read as complete files (each out with its size)."""
    try:
        if name.endswith("rwlock"):
            json.loads(text)
            return True
        stages = yaml.safe_load(text)["stages"]
        return all({"path", "md5", "size"} <= set(o) for st in stages.values() for o in st.get("outs", []))
    except (ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return False


class Dvc:
    name = "dvc"

    def __init__(self, tmp: Path):
        self.bin = str(DVC_VENV / "bin/dvc")
        self.tmp = tmp
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_")}
        self._env.update({
            "DVC_NO_ANALYTICS": "1",
            "DVC_STUDIO_OFFLINE": "1",
            # keep dvc's machine-wide folders (/var/tmp/dvc, ~/.config/dvc) in our temp dir
            "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site-cache"),
            "DVC_GLOBAL_CONFIG_DIR": str(tmp / "dvc-global-config"),
            "DVC_SYSTEM_CONFIG_DIR": str(tmp / "dvc-system-config"),
        })

    def start_server(self):
        pass

    def stop_server(self):
        pass

    def env(self) -> dict:
        return self._env

    def init(self, root: Path):
        p = run_timed([self.bin, "init", "--no-scm", "-q"], root, self._env, 120)
        if p.rc != 0:
            raise RuntimeError(f"dvc init failed: {p.err}")

    def plan(self, root: Path, timeout: float) -> Proc:
        return run_timed([self.bin, "dag", "--dot"], root, self._env, timeout)

    def run(self, root: Path, timeout: float, jobs: int = 1) -> Proc:
        return run_timed([self.bin, "repro"], root, self._env, timeout)

    def check_plan(self, p: Proc, dag: Dag, anom: Anomalies, what: str):
        if p.rc != 0:
            anom.add(self.name, what, f"exit {p.rc}: {_tail(p.err)}")
            return
        edges = {tuple(x.strip().strip('"') for x in line.rstrip(";").split("->"))
                 for line in p.out.splitlines() if "->" in line}
        if edges != dag.edges:
            anom.add(self.name, what, f"{len(edges)} edges in the dot output, expected {len(dag.edges)}")

    def check_run(self, p: Proc, dag: Dag, anom: Anomalies, what: str, want: str) -> bool:
        if p.timed_out:
            anom.add(self.name, what, f"killed after {p.secs:.0f} s")
            return False
        ran = p.out.count("Running stage '")
        expect_ran = len(dag.steps) if want == "finished" else 0
        if p.rc != 0 or ran != expect_ran:
            anom.add(self.name, what, f"exit {p.rc}, ran {ran} stages (expected {expect_ran}): "
                     f"{_tail(p.err or p.out)}")
            return False
        return True

    def state_paths(self, root: Path) -> list[Path]:
        return [root / ".dvc", root / "dvc.lock", root / ".dvcignore"]

    def commit_all(self, dag: Dag, root: Path) -> tuple[float, str]:
        """The state a finished `dvc repro` leaves, without it: every step's command run here in
        order, then `dvc commit -f` records them all in dvc.lock and the cache. Its time, and
        what the stopped run left broken. An interrupted `dvc repro` can leave dvc.lock or
        .dvc/tmp/rwlock cut mid-write (both seen here), so both go first: the commit records
        every stage again, and the cache it already holds is content-addressed."""
        broken = []
        for name in ("dvc.lock", ".dvc/tmp/rwlock"):
            f = root / name
            try:
                text = f.read_text()
            except OSError:
                continue
            if not lock_file_ok(name, text):
                broken.append(name)
            f.unlink()
        note = f"the stopped run left {' and '.join(broken)} unreadable" if broken else ""
        for s in dag.steps:
            subprocess.run(s.cmd, shell=True, cwd=root, check=True)
        p = run_timed([self.bin, "commit", "-f"], root, self._env, 3600)
        if p.rc != 0:
            raise RuntimeError(f"dvc commit failed: {_tail(p.err)}")
        return p.secs, note


# --------------------------------------------------------------------------------------
# results


@dataclass
class Row:
    label: str
    unit: str                    # "s", "ms", "files"
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    ratio: bool = True


class Results:
    def __init__(self):
        self.rows: dict[str, Row] = {}

    def put(self, tool: str, key: str, label: str, unit: str, value: float, note: str = "",
            ratio: bool = True):
        r = self.rows.setdefault(key, Row(label, unit, ratio=ratio))
        r.values[tool] = value
        if note:
            r.notes[tool] = note

    def get(self, tool: str, key: str) -> float | None:
        r = self.rows.get(key)
        return r.values.get(tool) if r else None


def fmt(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "s":
        return f"{v:,.3f} s" if v < 10 else f"{v:,.1f} s"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "files":
        return f"{v:,.0f} files"
    return f"{v:,.3g} {unit}"


def table(res: Results, which: list[str]) -> str:
    lines = ["| workload | dvc | slipway | ratio |", "|---|---|---|---|"]
    for r in res.rows.values():
        cells = []
        for t in ("dvc", "slipway"):
            c = fmt(r.values.get(t), r.unit) if t in which else "not run"
            if t in which and r.notes.get(t):
                c += f" ({r.notes[t]})"
            cells.append(c)
        a, b = r.values.get("dvc"), r.values.get("slipway")
        ratio = "n/a"
        if r.ratio and a is not None and b is not None and a == a and b == b and a > 0 and b > 0:
            ratio = f"{a / b:,.1f}x" if a / b >= 10 else f"{a / b:,.2f}x"
        lines.append(f"| {r.label} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float], unit: str = "s") -> str:
    if len(xs) < 2:
        return f"n={len(xs)}"
    return f"n={len(xs)}, {fmt(min(xs), unit)}-{fmt(max(xs), unit)}"


# --------------------------------------------------------------------------------------
# workloads


class Bench:
    def __init__(self, args, sz: Sizes, tmp: Path, res: Results, anom: Anomalies):
        self.args, self.sz, self.tmp, self.res, self.anom = args, sz, tmp, res, anom
        self.tools = {"slipway": Slipway(args.slipway_bin, tmp), "dvc": Dvc(tmp)}
        self.which = [args.only] if args.only else ["dvc", "slipway"]
        self.n = 0
        self.bare_xs: list[float] = []

    def project(self, dag: Dag, tool: str) -> Path:
        self.n += 1
        root = self.tmp / f"p{self.n:03d}-{tool}"
        write_project(dag, root, tool, f"bench{self.n:03d}")
        self.tools[tool].init(root)
        return root

    def drop(self, root: Path):
        shutil.rmtree(root, ignore_errors=True)

    # ---- baseline: one bare process start

    @property
    def bare_s(self) -> float:
        return med(self.bare_xs)

    def bare(self):
        """Times bare starts of `sh -c 'cat a > b'`; called at the start and before each first
        run of the chain, so that the baseline sees the same machine load as those runs."""
        d = self.tmp / "bare"
        d.mkdir()
        (d / "a").write_text("a\n")
        argv = ["sh", "-c", "cat a > b"]
        for _ in range(5):
            subprocess.run(argv, cwd=d, check=True)
        xs = []
        for _ in range(self.sz.bare_n):
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=d, check=True)
            xs.append(time.perf_counter() - t0)
        self.bare_xs += xs
        self.drop(d)
        print(f"   bare `sh -c 'cat a > b'`: {med(xs) * 1000:.2f} ms (median of {len(xs)})", flush=True)

    # ---- row 1: planning

    def planning(self, dag: Dag, key: str, label: str, dvc_cmd: str):
        for tool in self.which:
            t = self.tools[tool]
            root = self.project(dag, tool)
            try:
                xs = []
                for i in range(self.sz.reps_plan + 1):   # one warm-up
                    p = t.plan(root, 600)
                    t.check_plan(p, dag, self.anom, f"plan {dag.kind}")
                    if i:
                        xs.append(p.secs)
                note = spread(xs) + (f", `{dvc_cmd}`" if tool == "dvc" else ", `pipelines show --json`")
                self.res.put(tool, key, label, "s", med(xs), note)
                print(f"   {tool}: {med(xs):.3f} s", flush=True)
            finally:
                self.drop(root)

    # ---- rows 2 and 3b: the big DAG, first full run then no-op reruns

    def big(self, dag: Dag):
        sz = self.sz
        for tool in self.which:
            t = self.tools[tool]
            root = self.project(dag, tool)
            try:
                t.start_server()
                p = t.run(root, sz.full_limit_s)
                label = f"first full run, {dag.kind} = {sz.big:,} steps, --jobs 1"
                committed = ""
                if p.timed_out and tool == "dvc":
                    done = sum(all((root / o).exists() and (root / o).read_bytes() == want
                                       for o, want in st.expect.items()) for st in dag.steps)
                    self.res.put(tool, "big_full", label, "s", float("nan"),
                                 f"skipped: stopped at the {sz.full_limit_s:.0f} s limit with the outs of {done:,} "
                                 f"of {sz.big:,} stages written")
                    self.res.put(tool, "big_full_per_step", "  per step (total / steps)", "ms", float("nan"),
                                 f"{sz.full_limit_s / max(done, 1) * 1000:,.0f} ms per stage over those "
                                 f"{done:,}")
                    print(f"   {tool} first run: stopped after {p.secs:.0f} s, {done} stages done; "
                          "dvc commit for the rest", flush=True)
                    secs, note = self.tools["dvc"].commit_all(dag, root)
                    committed = f"; state from `dvc commit -f` ({secs:.0f} s) after the stopped run"
                    if note:
                        committed += f"; {note}"
                        print(f"   note: {note}", flush=True)
                    check_outs(dag, root, tool, f"commands of {dag.kind} run by the bench", self.anom)
                else:
                    ok = t.check_run(p, dag, self.anom, f"first run of {dag.kind}", "finished")
                    ok = check_outs(dag, root, tool, f"first run of {dag.kind}", self.anom) and ok
                    self.res.put(tool, "big_full", label, "s", p.secs if ok else float("nan"),
                                 "n=1" + (", over 5 min" if p.secs > 300 else "") + ("" if ok else ", FAILED"))
                    self.res.put(tool, "big_full_per_step", "  per step (total / steps)", "ms",
                                 p.secs / sz.big * 1000 if ok else float("nan"))
                    print(f"   {tool} first run: {p.secs:.1f} s{'' if ok else ' (FAILED)'}", flush=True)
                    if p.timed_out:
                        continue
                xs = []
                for _ in range(sz.reps_noop):
                    p = t.run(root, 600)
                    t.check_run(p, dag, self.anom, f"no-op rerun of {dag.kind}", "up_to_date")
                    xs.append(p.secs)
                check_outs(dag, root, tool, f"after the no-op reruns of {dag.kind}", self.anom)
                self.res.put(tool, "noop", f"no-op rerun, {dag.kind} = {sz.big:,} steps", "s", med(xs),
                             spread(xs) + f", first {xs[0]:.3f} s" + committed)
                print(f"   {tool} no-op: {med(xs):.3f} s", flush=True)
                n, b = tree_files(*t.state_paths(root))
                self.res.put(tool, "files", "files the tool keeps after these runs (dvc: .dvc/ + dvc.lock; "
                             "slipway: .slipway/ + the server's data dir)", "files", n,
                             f"{b / MiB:,.1f} MiB on disk", ratio=False)
            finally:
                t.stop_server()
                self.drop(root)

    # ---- row 3: first full run of a chain, per-step overhead

    def cold_chain(self):
        sz = self.sz
        xs: dict[str, list[float]] = {"dvc": [], "slipway": []}
        for rep in range(sz.reps_cold):
            self.bare()
            dag = chain_dag(sz.chain_run, f"cold{rep}")
            for tool in self.which:
                t = self.tools[tool]
                root = self.project(dag, tool)
                try:
                    t.start_server()
                    p = t.run(root, 600)
                    what = f"first run of a {dag.kind}"
                    if t.check_run(p, dag, self.anom, what, "finished") & \
                            check_outs(dag, root, tool, what, self.anom):
                        xs[tool].append(p.secs)
                finally:
                    t.stop_server()
                    self.drop(root)
        n = sz.chain_run
        for tool in self.which:
            tot = med(xs[tool])
            self.res.put(tool, "chain_full", f"first full run, chain of {n} steps, --jobs 1", "s", tot,
                         spread(xs[tool]))
            self.res.put(tool, "overhead",
                         f"  per-step overhead beyond one bare process start ((total - {n} x "
                         f"{self.bare_s * 1000:.2f} ms) / {n})",
                         "ms", (tot - n * self.bare_s) / n * 1000)
            print(f"   {tool}: {tot:.2f} s", flush=True)

    # ---- row 4: independent steps in parallel

    def parallel(self):
        sz = self.sz
        runs = [r for r in [("dvc", 1), ("slipway", 1), ("slipway", sz.par_jobs)] if r[0] in self.which]
        xs: dict[tuple[str, int], list[float]] = {r: [] for r in [("dvc", 1), ("slipway", 1), ("slipway", sz.par_jobs)]}
        for rep in range(sz.reps_par):
            dag = sleep_dag(sz.par_steps, sz.par_sleep, f"par{rep}")
            for tool, jobs in runs:
                t = self.tools[tool]
                root = self.project(dag, tool)
                try:
                    t.start_server()
                    p = t.run(root, 600, jobs=jobs)
                    what = f"{dag.kind} (sleep {sz.par_sleep:g}), --jobs {jobs}"
                    if t.check_run(p, dag, self.anom, what, "finished") & \
                            check_outs(dag, root, tool, what, self.anom):
                        xs[(tool, jobs)].append(p.secs)
                finally:
                    t.stop_server()
                    self.drop(root)
        label = f"{sz.par_steps} independent steps of `sleep {sz.par_sleep:g}`"
        d = med(xs[("dvc", 1)])
        dvc_note = spread(xs[("dvc", 1)]) + ", `dvc repro` runs stages one at a time"
        s1, sj = med(xs[("slipway", 1)]), med(xs[("slipway", sz.par_jobs)])
        self.res.put("dvc", "par1", f"{label}, slipway --jobs 1", "s", d, dvc_note)
        self.res.put("slipway", "par1", f"{label}, slipway --jobs 1", "s", s1, spread(xs[("slipway", 1)]))
        self.res.put("dvc", "parj", f"{label}, slipway --jobs {sz.par_jobs}", "s", d, dvc_note)
        self.res.put("slipway", "parj", f"{label}, slipway --jobs {sz.par_jobs}", "s", sj,
                     spread(xs[("slipway", sz.par_jobs)]) + f", speed-up over --jobs 1: {s1 / sj:.2f}x")
        print(f"   dvc {d:.2f} s, slipway -j1 {s1:.2f} s, -j{sz.par_jobs} {sj:.2f} s", flush=True)


# --------------------------------------------------------------------------------------
# environment


def ensure_dvc_env():
    """Creates (or refreshes) .venv-dvc from bench/requirements-dvc.txt, as
    scripts/evidently-env.sh does for .venv-evidently; nothing happens when it is current."""
    want = hashlib.sha256(DVC_REQ.read_bytes()).hexdigest()
    stamp = DVC_VENV / ".requirements.sha256"
    if (DVC_VENV / "bin/dvc").exists() and stamp.exists() and stamp.read_text().strip() == want:
        return
    print(f"pipeline_bench: installing {DVC_REQ.relative_to(REPO)} into {DVC_VENV.name}", flush=True)
    subprocess.run(["python3", "-m", "venv", str(DVC_VENV)], check=True)
    # keep the venv out of `git status` without touching the repository's .gitignore
    (DVC_VENV / ".gitignore").write_text("# created by bench/pipeline_bench.py\n*\n")
    py = str(DVC_VENV / "bin/python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", str(DVC_REQ)], check=True)
    stamp.write_text(want + "\n")


def default_bin() -> str:
    if os.environ.get("SLIPWAY_BIN"):
        return os.environ["SLIPWAY_BIN"]
    rel = REPO / "target/release/slipway"
    return str(rel if rel.exists() else REPO / "target/debug/slipway")


def pin_binary(src: str, tmp: Path) -> str:
    """A private link (else copy) of the binary, so a rebuild during the run cannot swap it."""
    dst = tmp / "slipway"
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return str(dst)


def machine_description(binary: str) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    dv = subprocess.run([str(DVC_VENV / "bin/dvc"), "--version"], capture_output=True, text=True,
                        env={**os.environ, "DVC_NO_ANALYTICS": "1"}).stdout.strip()
    p = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    sw = p.stdout.strip() or "version unknown"
    st = os.stat(binary)
    built = _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    profile = "debug build" if "/debug/" in binary else ("release build" if "/release/" in binary else "build")
    return [
        f"- machine: {nproc} CPUs (nproc), {cpu}, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, temp dirs on {tempfile.gettempdir()}",
        f"- dvc {dv} (`.venv-dvc`, python {platform.python_version()}), `dvc init --no-scm`, "
        "analytics off",
        f"- slipway: {sw}, {profile} ({binary}, built {built}); tracking server `slipway server` on "
        "loopback, SQLite, fresh data dir",
    ]


# --------------------------------------------------------------------------------------


def aims(res: Results, debug: bool) -> list[str]:
    out = []
    s, d = res.get("slipway", "noop"), res.get("dvc", "noop")
    if s is not None and s == s:
        if d and d == d:
            out.append(f"- no-op rerun of the big DAG under 1 s and >= 10x faster than dvc: "
                       f"{'met' if s < 1 and d / s >= 10 else 'NOT met'} ({s:.3f} s, {d / s:.1f}x faster than dvc)")
        else:
            out.append(f"- no-op rerun of the big DAG under 1 s: {'met' if s < 1 else 'NOT met'} "
                       f"({s:.3f} s; dvc not run)")
    o = res.get("slipway", "overhead")
    if o is not None and o == o:
        out.append(f"- per-step overhead of a first run under 5 ms: {'met' if o < 5 else 'NOT met'} "
                   f"({o:.2f} ms{', debug build' if debug else ''})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a couple of minutes)")
    ap.add_argument("--write-results", action="store_true", help="append a dated section to bench/RESULTS.md")
    ap.add_argument("--slipway-bin", default=default_bin(),
                    help="default: $SLIPWAY_BIN, else target/release/slipway, else target/debug/slipway")
    ap.add_argument("--only", choices=["dvc", "slipway"], help="run one tool only")
    ap.add_argument("--full-limit", type=float, metavar="S",
                    help="stop a first full run of the big DAG after S seconds (default 300); a stopped "
                    "dvc run is completed by `dvc commit` so that the no-op row can still run")
    ap.add_argument("--rows", nargs="+", choices=["plan", "big", "chain", "parallel"],
                    default=["plan", "big", "chain", "parallel"], help="run only these rows")
    args = ap.parse_args()
    if not os.access(args.slipway_bin, os.X_OK):
        sys.exit(f"slipway binary not found or not executable: {args.slipway_bin} (set SLIPWAY_BIN)")
    ensure_dvc_env()

    sz = sizes_for(args.quick)
    if args.full_limit:
        sz.full_limit_s = args.full_limit
    mode = "quick" if args.quick else "full"
    tmp = Path(tempfile.mkdtemp(prefix="slipway-pipeline-bench-"))
    res, anom = Results(), Anomalies()
    t_all = time.perf_counter()
    try:
        desc = machine_description(args.slipway_bin)
        args.slipway_bin = pin_binary(args.slipway_bin, tmp)
        print(f"# Slipway pipeline benchmark ({mode})")
        print("\n".join(desc), flush=True)
        load = os.getloadavg()
        print(f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
              + ("  (WARNING: the machine is busy; numbers will be noisy)" if load[0] > 0.7 else ""))
        desc.append(f"- load average before the run: {load[0]:.2f} (1 min)")

        b = Bench(args, sz, tmp, res, anom)
        b.bare()

        def row(name: str, title: str, fn):
            if name not in args.rows:
                return
            print(title, flush=True)
            try:
                fn()
            except Exception as e:  # keep going with the next row
                print(f"   FAILED: {e}", flush=True)
                traceback.print_exc()
                anom.add("harness", f"row '{name}'", f"exception: {e!r}")

        big = layered_dag(sz.layers, sz.width, "plan")
        ch = chain_dag(sz.chain_plan, "plan")

        def plan():
            b.planning(big, "plan_layered", f"plan {big.kind} = {sz.big:,} steps", "dvc dag --dot")
            print(f"== planning, {ch.kind}", flush=True)
            b.planning(ch, "plan_chain", f"plan {ch.kind} steps", "dvc dag --dot")

        row("plan", f"\n== planning, {big.kind} ({sz.big} steps, {len(big.edges)} edges)", plan)
        row("big", f"\n== first full run and no-op reruns, {big.kind}",
            lambda: b.big(layered_dag(sz.layers, sz.width, "big")))
        row("chain", f"\n== first full runs, chain of {sz.chain_run} ({sz.reps_cold} each)", b.cold_chain)
        row("parallel", f"\n== {sz.par_steps} independent sleep steps ({sz.reps_par} each)", b.parallel)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        for t in (b.tools.values() if "b" in locals() else []):
            t.stop_server()
        shutil.rmtree(tmp, ignore_errors=True)

    for tool in ("dvc", "slipway"):
        res.put(tool, "bare", "baseline: one bare `sh -c 'cat a > b'` (spawn to exit, from Python)", "ms",
                b.bare_s * 1000, f"median of {len(b.bare_xs)}" if tool == "dvc" else "", ratio=False)
    tbl = table(res, b.which)
    notes = anom.summary()
    goal = aims(res, any("debug build" in line for line in desc))
    print(f"\n## Results ({mode}, {time.perf_counter() - t_all:.0f} s wall)\n")
    print(tbl)
    print("\nratio: dvc / slipway (>1 means slipway is faster); times are medians, wall clock from "
          "spawning the command to its exit")
    if goal:
        print("\nAims:\n" + "\n".join(goal))
    if notes:
        print("\n### Misbehaviour / anomalies")
        for n in notes:
            print(f"- {n}")

    if args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = REPO / "bench/RESULTS.md"
        section = [f"## {stamp} pipeline benchmark ({mode}{', only ' + args.only if args.only else ''})", ""] + desc + [
            f"- command: `.venv/bin/python bench/pipeline_bench.py {' '.join(sys.argv[1:])}`", "", tbl, "",
            "ratio: dvc / slipway (>1 means slipway is faster); times are medians, wall clock from "
            "spawning the command to its exit", ""]
        if goal:
            section += ["Aims:", ""] + goal + [""]
        if notes:
            section += ["Anomalies:", ""] + [f"- {n}" for n in notes] + [""]
        out.write_text(out.read_text().rstrip("\n") + "\n\n" + "\n".join(section))
        print(f"\nappended to {out}")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
