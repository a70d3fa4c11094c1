#!/usr/bin/env python3
"""Side-by-side benchmark of model-registry search: MLflow reference server vs Slipway.

Usage (from the repository root):

    .venv/bin/python bench/registry_bench.py [--quick] [--only slipway|mlflow] [--write-results]

Both servers get the same registry: N registered models (every 10th tagged team=risk, the rest
team=core) with 10 versions each (each version tagged), every model's versions coming from one
run of its own. Slipway is populated through its REST API (8 threads, timed); mlflow, whose
~50 ms per request would make that take far too long, is started once to create its schema,
stopped, filled with sqlite3 directly, restarted, and its counts checked through REST.

The servers run one at a time (never both at once), in their own process group, and are
killed by group; see bench/README.md, section "Registry benchmark".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.dont_write_bytecode = True  # importing tracking_bench must not leave bench/__pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking_bench import (  # noqa: E402  (module without import-time side effects)
    REPO,
    Anomalies,
    Client,
    Results,
    Server,
    free_port,
    machine_description,
    new_session,
    now_ms,
    pct,
    table,
    tree_rss,
)

# --------------------------------------------------------------------------------------
# sizes and the data set


@dataclass
class Sizes:
    models: int = 5_000
    versions: int = 10           # per model
    tag_every: int = 10          # every 10th model gets team=risk
    queries: int = 30            # measured queries per workload (after one warm-up)
    populate_threads: int = 8    # Slipway REST population
    verify_page: int = 10_000    # page size of the untimed version count check


def sizes_for(quick: bool) -> Sizes:
    return Sizes(models=500, queries=10) if quick else Sizes()


def model_name(i: int) -> str:
    return f"model-{i:05d}"


def model_tags(i: int, sz: Sizes) -> list[dict]:
    return [{"key": "team", "value": "risk" if i % sz.tag_every == 0 else "core"}]


def version_tags(v: int) -> list[dict]:
    return [{"key": "validation", "value": "passed" if v % 2 == 0 else "pending"}]


class Dataset:
    """What the harness knows about the registry it built; expected answers are derived from
    it. Ordering follows mlflow's defaults: registered models by name ASC, model versions by
    last_updated_timestamp DESC, name ASC, version DESC."""

    def __init__(self, sz: Sizes):
        self.sz = sz
        n = sz.models
        self.names = [model_name(i) for i in range(n)]
        # The single-model target of workloads 4 and 5: model-01234 at full size; at other
        # sizes an index in the middle of the range (quick: model-00234).
        self.target = 1234 if n >= 1300 else min(n - 1, (n // 2) // 100 * 100 + 34)
        self.prefix = model_name(self.target)[:-2]          # 'model-012': 100 models
        self.run_ids: dict[int, str] = {}                     # filled per server

    @property
    def n_versions(self) -> int:
        return self.sz.models * self.sz.versions

    def like_names(self) -> list[str]:
        return [n for n in self.names if n.startswith(self.prefix)][:100]

    def risk_names(self) -> list[str]:
        return [self.names[i] for i in range(self.sz.models) if i % self.sz.tag_every == 0]

    def first_names(self, k: int) -> list[str]:
        return self.names[:k]

    def target_versions(self) -> list[tuple[str, int]]:
        return [(self.names[self.target], v) for v in range(self.sz.versions, 0, -1)]


# --------------------------------------------------------------------------------------
# population


def populate_slipway(srv: Server, ds: Dataset, anom: Anomalies) -> tuple[float, int]:
    """Per model: runs/create, registered-models/create (with its tag), then its versions in
    order through model-versions/create with source runs:/<run>/model. Models are dealt out
    round-robin to the threads; each thread has its own keep-alive connection."""
    sz = ds.sz
    errors = [0] * sz.populate_threads
    run_ids: dict[int, str] = {}
    lock = threading.Lock()

    def worker(t: int):
        c = Client(srv, anom, new_session(1))
        for i in range(t, sz.models, sz.populate_threads):
            r = c.post("/runs/create", {"experiment_id": "0", "run_name": f"train-{i:05d}",
                                        "start_time": now_ms()}, "runs/create (experiment 0)")
            rid = None
            try:
                rid = r["run"]["info"]["run_id"] if r else None
            except (KeyError, TypeError):
                pass
            if not rid:
                errors[t] += 1
                continue
            with lock:
                run_ids[i] = rid
            name = ds.names[i]
            if c.post("/registered-models/create", {"name": name, "tags": model_tags(i, sz)},
                      "registered-models/create") is None:
                errors[t] += 1
                continue
            for v in range(1, sz.versions + 1):
                r = c.post("/model-versions/create",
                           {"name": name, "source": f"runs:/{rid}/model", "run_id": rid,
                            "tags": version_tags(v)}, "model-versions/create (runs:/<run>/model)")
                if r is None:
                    errors[t] += 1
                    continue
                got = (r.get("model_version") or {}).get("version")
                if str(got) != str(v):
                    anom.add(srv.kind, "model-versions/create",
                             f"expected version {v!r} for {name}, got {got!r}")
        c.s.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(sz.populate_threads)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dt = time.perf_counter() - t0
    ds.run_ids = run_ids
    return dt, sum(errors)


def _check_columns(con: sqlite3.Connection, tbl: str, cols: list[str]):
    """Every column we write must exist, and every NOT NULL column without a default must be
    among them (otherwise mlflow's schema changed and the inserts would be wrong)."""
    info = con.execute(f"PRAGMA table_info({tbl})").fetchall()
    if not info:
        raise RuntimeError(f"mlflow schema: table {tbl} does not exist")
    have = {r[1] for r in info}
    missing = [c for c in cols if c not in have]
    needed = [r[1] for r in info if r[3] and r[4] is None and r[1] not in cols]
    if missing or needed:
        raise RuntimeError(f"mlflow schema of {tbl} changed: we write {cols}; unknown columns "
                           f"{missing}; NOT NULL columns without default we do not write {needed}")


def _insert(con: sqlite3.Connection, tbl: str, cols: list[str], rows: list[tuple]):
    _check_columns(con, tbl, cols)
    con.executemany(f"INSERT INTO {tbl} ({', '.join(cols)}) VALUES "
                    f"({', '.join('?' * len(cols))})", rows)


def populate_mlflow_sqlite(db: Path, ds: Dataset) -> float:
    """Writes the data set straight into mlflow's (migrated, server stopped) SQLite database:
    one run per model in the Default experiment (0), the registered models, their tags, the
    versions (source runs:/<run>/model, stage None, status READY) and the version tags. The
    column values are what mlflow's own create calls store (see
    mlflow/store/model_registry/sqlalchemy_store.py)."""
    sz = ds.sz
    t0 = time.perf_counter()
    con = sqlite3.connect(str(db))
    try:
        row = con.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0"
                          ).fetchone()
        if row is None:
            raise RuntimeError("mlflow database has no Default experiment (id 0)")
        exp_loc = (row[0] or "").rstrip("/")
        ws = "default"
        base = now_ms() - sz.models * (sz.versions + 1) - 1000
        runs, models, mtags, versions, vtags = [], [], [], [], []
        for i, name in enumerate(ds.names):
            rid = uuid.uuid4().hex
            ds.run_ids[i] = rid
            t = base + i * (sz.versions + 1)
            runs.append((rid, f"train-{i:05d}", "UNKNOWN", "", "", "bench", "FINISHED", t,
                         t + 1, "", "active", f"{exp_loc}/{rid}/artifacts", 0))
            models.append((ws, name, t, t + sz.versions, None))
            for tg in model_tags(i, sz):
                mtags.append((ws, name, tg["key"], tg["value"]))
            src = f"runs:/{rid}/model"
            for v in range(1, sz.versions + 1):
                versions.append((ws, name, v, t + v, t + v, None, None, "None", src, src, rid,
                                 None, "READY", None))
                for tg in version_tags(v):
                    vtags.append((ws, name, v, tg["key"], tg["value"]))
        with con:  # one transaction
            _insert(con, "runs", ["run_uuid", "name", "source_type", "source_name",
                                  "entry_point_name", "user_id", "status", "start_time",
                                  "end_time", "source_version", "lifecycle_stage",
                                  "artifact_uri", "experiment_id"], runs)
            _insert(con, "registered_models", ["workspace", "name", "creation_time",
                                               "last_updated_time", "description"], models)
            _insert(con, "registered_model_tags", ["workspace", "name", "key", "value"], mtags)
            _insert(con, "model_versions", ["workspace", "name", "version", "creation_time",
                                            "last_updated_time", "description", "user_id",
                                            "current_stage", "source", "storage_location",
                                            "run_id", "run_link", "status", "status_message"],
                    versions)
            _insert(con, "model_version_tags", ["workspace", "name", "version", "key", "value"],
                    vtags)
        got = con.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
        if got != ds.n_versions:
            raise RuntimeError(f"after insert, model_versions holds {got} rows, "
                               f"expected {ds.n_versions}")
    finally:
        con.close()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# queries


def search(c: Client, endpoint: str, key: str, params: dict, what: str,
           follow: bool = False, max_pages: int = 1000) -> tuple[list[dict], int] | None:
    """One page, or (follow=True) every page until next_page_token is absent. Returns the
    items and the number of pages, or None when a request failed (recorded as an anomaly)."""
    items: list[dict] = []
    token, pages = None, 0
    for _ in range(max_pages):
        p = dict(params)
        if token:
            p["page_token"] = token
        r = c.get(endpoint, p, what)
        if r is None:
            return None
        items += r.get(key, [])
        pages += 1
        token = r.get("next_page_token")
        if not follow or not token:
            break
    return items, pages


def model_names(items: list[dict]) -> list[str]:
    return [m.get("name") for m in items]


def version_keys(items: list[dict]) -> list[tuple[str, int]]:
    out = []
    for mv in items:
        try:
            out.append((mv.get("name"), int(mv.get("version"))))
        except (TypeError, ValueError):
            out.append((mv.get("name"), -1))
    return out


@dataclass
class Workload:
    key: str
    label: str
    endpoint: str
    items_key: str
    params: Callable[[Dataset], dict]
    # the exact answer (names, or (name, version) pairs, in order), or only its length where
    # the order depends on server-side timestamps (then the default order is checked instead)
    expected: Callable[[Dataset], list | int]
    follow: bool = False


def workloads(sz: Sizes) -> list[Workload]:
    rm, mv = "/registered-models/search", "/model-versions/search"
    return [
        Workload("rm_like", "search_registered_models name LIKE '<prefix>%' (max 100)", rm,
                 "registered_models",
                 lambda ds: {"filter": f"name LIKE '{ds.prefix}%'", "max_results": 100},
                 lambda ds: ds.like_names()),
        Workload("rm_tag", "search_registered_models tags.team = 'risk' (max 100, all pages)",
                 rm, "registered_models",
                 lambda ds: {"filter": "tags.team = 'risk'", "max_results": 100},
                 lambda ds: ds.risk_names(), follow=True),
        Workload("rm_all", "search_registered_models no filter, max 1000, order_by name ASC", rm,
                 "registered_models",
                 lambda ds: {"max_results": 1000, "order_by": ["name ASC"]},
                 lambda ds: ds.first_names(1000)),
        Workload("mv_name", "search_model_versions name = '<target>'", mv, "model_versions",
                 lambda ds: {"filter": f"name = '{ds.names[ds.target]}'"},
                 lambda ds: ds.target_versions()),
        Workload("mv_run", "search_model_versions run_id = '<run of target>'", mv,
                 "model_versions",
                 lambda ds: {"filter": f"run_id = '{ds.run_ids.get(ds.target, 'missing')}'"},
                 lambda ds: ds.target_versions()),
        # mlflow's default order is last_updated_timestamp DESC, name ASC, version DESC; the
        # timestamps differ between the two populations, so only the count is fixed here.
        Workload("mv_all", "search_model_versions no filter, max 1000", mv, "model_versions",
                 lambda ds: {"max_results": 1000},
                 lambda ds: min(1000, ds.n_versions)),
    ]


def describe(w: Workload, ds: Dataset) -> str:
    return (w.label.replace("<prefix>", ds.prefix)
            .replace("<target>", ds.names[ds.target])
            .replace("<run of target>", "<run of " + ds.names[ds.target] + ">"))


def default_order_break(items: list[dict]) -> int | None:
    """Index of the first model version out of mlflow's default search order
    (last_updated_timestamp DESC, name ASC, version DESC), or None when ordered."""
    def k(mv):
        try:
            return (-int(mv.get("last_updated_timestamp")), mv.get("name"), -int(mv.get("version")))
        except (TypeError, ValueError):
            return None
    keys = [k(mv) for mv in items]
    for i in range(1, len(keys)):
        if keys[i] is None or keys[i - 1] is None or keys[i] < keys[i - 1]:
            return i
    return None


def run_workload(srv: Server, w: Workload, ds: Dataset, res: Results, anom: Anomalies,
                 counts: dict):
    c = Client(srv, anom, new_session(1))
    params = w.params(ds)
    what = f"GET {w.endpoint} {params}"
    want = w.expected(ds)
    n_want = want if isinstance(want, int) else len(want)
    keyf = model_names if w.items_key == "registered_models" else version_keys

    def once():
        return search(c, w.endpoint, w.items_key, params, what, follow=w.follow)

    once()  # warm-up
    lat, errors, wrong, first = [], 0, 0, None
    for _ in range(ds.sz.queries):
        t0 = time.perf_counter()
        out = once()
        lat.append((time.perf_counter() - t0) * 1000)
        if out is None:
            errors += 1
            continue
        items, pages = out
        if len(items) != n_want:
            wrong += 1
        if first is None:
            first = (items, pages)
    c.s.close()

    notes = []
    if errors:
        notes.append(f"{errors} failed")
    if first is not None:
        items, pages = first
        got = keyf(items)
        counts.setdefault(w.key, {})[srv.kind] = len(got)
        if len(got) != n_want:
            notes.append(f"{len(got)} results, expected {n_want}")
            anom.add(srv.kind, what, f"expected {n_want} results, got {len(got)}"
                     + (f" (first: {got[:3]})" if got else ""))
        elif isinstance(want, list) and got != want:
            diff = next(k for k in range(len(want)) if got[k] != want[k])
            anom.add(srv.kind, what, f"expected {n_want} results in mlflow's order; they "
                     f"differ from position {diff}: expected {want[diff:diff + 3]}..., got "
                     f"{got[diff:diff + 3]}...")
            notes.append("order/content differs")
        elif w.items_key == "model_versions" and (i := default_order_break(items)) is not None:
            around = [(mv.get("name"), mv.get("version"), mv.get("last_updated_timestamp"))
                      for mv in items[max(0, i - 1):i + 1]]
            anom.add(srv.kind, what, "expected the default order last_updated_timestamp DESC, "
                     f"name ASC, version DESC; broken at position {i}: (name, version, "
                     f"last_updated_timestamp) {around}")
            notes.append("order differs")
        if len(set(got)) != len(got):
            anom.add(srv.kind, what, f"expected distinct results, got {len(got)} results of "
                     f"which {len(set(got))} distinct")
        if wrong:
            anom.add(srv.kind, what, f"{wrong} of {ds.sz.queries} measured answers had a "
                     f"result count other than {n_want}")
        if w.follow:
            notes.append(f"{pages} page" + ("s" if pages != 1 else ""))
    label = describe(w, ds)
    res.put(srv.kind, w.key + "50", f"{label}: p50 (n={ds.sz.queries})", "ms", False,
            pct(lat, 50), ", ".join(notes))
    res.put(srv.kind, w.key + "95", f"{label}: p95", "ms", False, pct(lat, 95))


def verify_counts(srv: Server, ds: Dataset, anom: Anomalies) -> float:
    """Untimed check (reported in the log only): every model and every version is visible
    through REST, paging through registered-models/search (1000 a page) and
    model-versions/search (verify_page a page)."""
    c = Client(srv, anom, new_session(1))
    t0 = time.perf_counter()
    n_pages_m = ds.sz.models // 1000 + 3
    out = search(c, "/registered-models/search", "registered_models", {"max_results": 1000},
                 "GET /registered-models/search (count all, 1000 a page)", True, n_pages_m)
    if out is None:
        raise RuntimeError("registered-models/search failed while counting")
    if len(out[0]) != ds.sz.models or len(set(model_names(out[0]))) != ds.sz.models:
        anom.add(srv.kind, "registered-models/search (count all)",
                 f"expected {ds.sz.models} distinct models, got {len(out[0])} "
                 f"({len(set(model_names(out[0])))} distinct) in {out[1]} pages")
    n_pages_v = ds.n_versions // ds.sz.verify_page + 3
    out = search(c, "/model-versions/search", "model_versions",
                 {"max_results": ds.sz.verify_page},
                 f"GET /model-versions/search (count all, {ds.sz.verify_page} a page)", True,
                 n_pages_v)
    if out is None:
        raise RuntimeError("model-versions/search failed while counting")
    keys = version_keys(out[0])
    if len(keys) != ds.n_versions or len(set(keys)) != ds.n_versions:
        anom.add(srv.kind, "model-versions/search (count all)",
                 f"expected {ds.n_versions} distinct versions, got {len(keys)} "
                 f"({len(set(keys))} distinct) in {out[1]} pages")
    # one model's tags and one version's tags, as a spot check of what population wrote
    rm = c.get("/registered-models/get", {"name": ds.names[0]}, "GET /registered-models/get")
    if rm is not None:
        tags = {t.get("key"): t.get("value")
                for t in (rm.get("registered_model") or {}).get("tags", [])}
        if tags.get("team") != "risk":
            anom.add(srv.kind, "registered-models/get (spot check)",
                     f"expected tag team=risk on {ds.names[0]}, got {tags}")
    mv = c.get("/model-versions/get", {"name": ds.names[0], "version": "2"},
               "GET /model-versions/get")
    if mv is not None:
        mvd = mv.get("model_version") or {}
        tags = {t.get("key"): t.get("value") for t in mvd.get("tags", [])}
        want_src = f"runs:/{ds.run_ids.get(0)}/model"
        if tags.get("validation") != "passed" or mvd.get("source") != want_src \
                or mvd.get("run_id") != ds.run_ids.get(0):
            anom.add(srv.kind, "model-versions/get (spot check)",
                     f"expected {ds.names[0]} v2 with tag validation=passed, source {want_src} "
                     f"and its run_id, got tags {tags}, source {mvd.get('source')!r}, run_id "
                     f"{mvd.get('run_id')!r}")
    c.s.close()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------


def restart(srv: Server, timeout: float):
    srv.port = free_port()
    srv.base = f"http://127.0.0.1:{srv.port}"
    srv.start(timeout)


def run_server(kind: str, args, sz: Sizes, res: Results, anom: Anomalies, tmp: Path,
               counts: dict):
    ds = Dataset(sz)
    srv = Server(kind, args.slipway_bin, tmp)
    pop_label = (f"populate {sz.models:,} models x {sz.versions} versions (+{sz.models:,} runs, "
                 f"tags; slipway: REST, {sz.populate_threads} threads; mlflow: direct SQLite "
                 f"insert)")
    print(f"\n== {kind}: starting ({' '.join(srv.cmd())})", flush=True)
    try:
        if kind == "mlflow":
            srv.start(timeout=180)
            print(f"   healthy after {srv.startup_s:.1f} s (schema created); stopping", flush=True)
            c = Client(srv, anom)
            c.get("/experiments/get", {"experiment_id": "0"})  # both stores initialised
            c.get("/registered-models/search", {"max_results": 1})
            c.s.close()
            srv.stop()
            print("   inserting rows with sqlite3 ...", end="", flush=True)
            dt = populate_mlflow_sqlite(srv.data_dir / "mlflow.db", ds)
            print(f" {dt:.1f} s", flush=True)
            res.put(kind, "populate", pop_label, "s", False, float("nan"),
                    f"SQLite insert took {dt:.1f} s; not comparable")
            restart(srv, 180)
            print(f"   restarted, healthy after {srv.startup_s:.1f} s", flush=True)
        else:
            srv.start(timeout=60)
            print(f"   healthy after {srv.startup_s:.1f} s", flush=True)
            print(f"   populating through REST ({sz.populate_threads} threads) ...", end="",
                  flush=True)
            dt, errs = populate_slipway(srv, ds, anom)
            print(f" {dt:.1f} s" + (f" ({errs} failed requests)" if errs else ""), flush=True)
            res.put(kind, "populate", pop_label, "s", False, dt,
                    f"{errs} failed" if errs else "")
            if errs > sz.models:
                raise RuntimeError(f"population failed ({errs} failed requests)")
        print("   verifying counts through REST ...", end="", flush=True)
        print(f" {verify_counts(srv, ds, anom):.1f} s", flush=True)
        for w in workloads(sz):
            if not srv.alive():
                anom.add(kind, "server process", f"died before '{w.key}'\n{srv.log_tail()}")
                break
            print(f"   {describe(w, ds)} ...", end="", flush=True)
            t0 = time.perf_counter()
            try:
                run_workload(srv, w, ds, res, anom, counts)
                print(f" {time.perf_counter() - t0:.1f} s", flush=True)
            except Exception as e:  # keep going with the next workload
                print(f" FAILED: {e}", flush=True)
                anom.add(kind, f"workload '{w.key}'", f"harness exception: {e!r}")
                traceback.print_exc()
        if srv.alive():
            res.put(kind, "rss", "server RSS after the searches", "MiB", False,
                    tree_rss(srv.proc.pid))
        else:
            anom.add(kind, "server process", f"exited with {srv.proc.returncode}\n"
                     f"{srv.log_tail()}")
    finally:
        srv.stop()
        srv.cleanup()


RATIO_NOTE = ("ratio: mlflow time / slipway time (memory: mlflow / slipway); >1 means slipway "
              "is faster (smaller)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 models, 10 queries per workload")
    ap.add_argument("--only", choices=["mlflow", "slipway"], help="benchmark one server only")
    ap.add_argument("--write-results", action="store_true",
                    help="append a dated section to bench/RESULTS.md")
    ap.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN") or
                    str(REPO / "target/release/slipway"))
    args = ap.parse_args()

    servers = [args.only] if args.only else ["mlflow", "slipway"]
    if "slipway" in servers and not os.access(args.slipway_bin, os.X_OK):
        sys.exit(f"slipway binary not found or not executable: {args.slipway_bin} "
                 f"(set SLIPWAY_BIN or --slipway-bin, or use --only mlflow)")
    if "mlflow" in servers and not (REPO / ".venv/bin/mlflow").exists():
        sys.exit(f"{REPO / '.venv/bin/mlflow'} missing (pip install mlflow==3.17.2 into .venv)")

    sz = sizes_for(args.quick)
    mode = "quick" if args.quick else "full"
    desc = machine_description(args.slipway_bin, servers)
    desc.append(f"- data set: {sz.models:,} registered models x {sz.versions} versions = "
                f"{sz.models * sz.versions:,} versions; {sz.queries} measured queries per "
                f"workload after 1 warm-up")
    print(f"# Slipway registry benchmark ({mode})")
    print("\n".join(desc), flush=True)
    load = os.getloadavg()
    print(f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (WARNING: the machine is busy; numbers will be noisy)" if load[0] > 0.7 else ""))
    desc.append(f"- load average before the run: {load[0]:.2f} (1 min)")
    stray = sorted(k for k in os.environ if (k.startswith("SLIPWAY_") and k != "SLIPWAY_BIN")
                   or k.startswith("MLFLOW_"))
    if stray:
        print(f"- note: the servers inherit these environment variables: {', '.join(stray)}")

    res, anom, counts = Results(), Anomalies(), {}
    tmp = Path(tempfile.mkdtemp(prefix="slipway-regbench-"))
    t_all = time.perf_counter()
    try:
        for kind in servers:
            try:
                run_server(kind, args, sz, res, anom, tmp, counts)
            except Exception as e:
                print(f"\n   {kind} FAILED: {e}", flush=True)
                anom.add(kind, "run", f"harness exception: {e!r}")
                traceback.print_exc()
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for key, per in counts.items():
        if len(per) == 2 and per["mlflow"] != per["slipway"]:
            anom.add("slipway", f"{key} vs mlflow",
                     f"mlflow returned {per['mlflow']} results, slipway {per['slipway']}")

    tbl = table(res, servers)
    notes = anom.summary()
    print(f"\n## Results ({mode}, {time.perf_counter() - t_all:.0f} s wall)\n")
    print(tbl)
    print(f"\n{RATIO_NOTE}")
    if notes:
        print("\n### Server misbehaviour / anomalies")
        for n in notes:
            print(f"- {n}")

    if args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = REPO / "bench/RESULTS.md"
        section = [f"## {stamp} registry benchmark ({mode}"
                   f"{', only ' + args.only if args.only else ''})", ""]
        section += desc + ["", tbl, "", RATIO_NOTE, ""]
        if notes:
            section += ["Anomalies:", ""] + [f"- {n}" for n in notes] + [""]
        prev = out.read_text() if out.exists() else (
            "# Benchmark results\n\nProduced by `bench/tracking_bench.py --write-results` and "
            "`bench/registry_bench.py --write-results`; newest section last. See "
            "bench/README.md for what each row means.\n\n")
        out.write_text(prev.rstrip("\n") + "\n\n" + "\n".join(section))
        print(f"\nappended to {out}")
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
