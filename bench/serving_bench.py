#!/usr/bin/env python3
"""Side-by-side benchmark of model serving: `mlflow models serve` vs `slipway serve`.

Usage (from the repository root):

    .venv/bin/python bench/serving_bench.py [--quick] [--only mlflow|slipway] [--write-results]

The same scikit-learn models (a LogisticRegression on 20 features, a RandomForestClassifier of
100 trees) are exported with skl2onnx and saved once as MLflow model directories
(`mlflow.onnx.save_model`). Each directory is served, one server at a time, by
`mlflow models serve --env-manager local` (its default of 1 uvicorn worker, and again with
`--workers 2`) and by `slipway serve DIR`, and driven by `wrk` (C, epoll) with the same
`dataframe_split` JSON bodies: one row at concurrency 1 and 16, 100 rows at concurrency 4.
Slipway's p50 at concurrency 1 is compared with `onnxruntime.InferenceSession.run` on the
same row in this process. See bench/README.md, section "Serving benchmark".
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.dont_write_bytecode = True  # importing tracking_bench must not leave bench/__pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tracking_bench import (  # noqa: E402  (module without import-time side effects)
    MiB,
    REPO,
    Anomalies,
    RssSampler,
    Server,
    machine_description,
    pct,
    tree_rss,
)

try:
    import numpy as np
    import psutil
    import requests
except ImportError as e:  # pragma: no cover
    sys.exit(f"missing dependency ({e}); run: .venv/bin/pip install -r bench/requirements.txt")

N_FEATURES = 20
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
BATCH_ROWS = 100
PROB_TOL = 1e-5

# --------------------------------------------------------------------------------------
# configuration


@dataclass
class Workload:
    key: str
    label: str
    body: str         # "single" | "batch" | "v2" | "ping" (GET /ping, no body)
    connections: int
    threads: int
    rows: int


WORKLOADS = [
    Workload("c1", "1 row, concurrency 1", "single", 1, 1, 1),
    Workload("c16", "1 row, concurrency 16", "single", 16, 1, 1),
    Workload("b100", f"{BATCH_ROWS} rows, concurrency 4", "batch", 4, 1, BATCH_ROWS),
]
# slipway only: the Open Inference Protocol V2 JSON endpoint, for the overhead figure
V2_WORKLOAD = Workload("v2c1", "1 row V2 JSON, concurrency 1", "v2", 1, 1, 1)
# the HTTP round trip alone (wrk + loopback + the server's HTTP stack), for reading the overhead
PING_WORKLOAD = Workload("ping", "GET /ping, concurrency 1 (HTTP floor)", "ping", 1, 1, 1)


@dataclass
class ServerSpec:
    key: str           # column id
    label: str         # column header
    kind: str          # "mlflow" | "slipway"
    workers: int | None = None


SERVER_SPECS = [
    ServerSpec("mlflow", "mlflow (default: 1 worker)", "mlflow", None),
    ServerSpec("mlflow_w2", "mlflow --workers 2", "mlflow", 2),
    ServerSpec("slipway", "slipway (default)", "slipway", None),
]


@dataclass
class ModelCase:
    key: str
    label: str
    dir: Path
    onnx_path: Path
    X: np.ndarray                      # float32 rows used for the request bodies
    input_name: str = "X"              # the ONNX graph's input (skl2onnx names it X)
    ref_single: list[dict] = field(default_factory=list)   # in-process ORT answers
    ref_batch: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# models


def build_models(root: Path, which: list[str]) -> list[ModelCase]:
    import mlflow.onnx
    import pandas as pd
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=5000, n_features=N_FEATURES, n_informative=10,
                               n_redundant=4, random_state=0)
    X = X.astype(np.float32)
    Xtr, Xte = X[:4000], X[4000:4000 + BATCH_ROWS]
    cases = []
    for key in which:
        if key == "logreg":
            m, label = LogisticRegression(max_iter=1000), "LogisticRegression (20 features)"
        else:
            m = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
            label = "RandomForestClassifier (100 trees, 20 features)"
        m.fit(Xtr, y[:4000])
        # default skl2onnx export: output_label + output_probability (ZipMap), as users get it
        onx = to_onnx(m, Xtr[:1], target_opset={"": 17, "ai.onnx.ml": 3})
        d = root / key
        df = pd.DataFrame(Xtr[:200], columns=COLUMNS)
        sig = infer_signature(df, m.predict(Xtr[:200]))
        # Column signature f0..f19 (float), packed by both servers into the single input.
        # Session options: one intra-op / inter-op thread, which is what Slipway uses for every
        # session and what the in-process baseline uses; mlflow honours them from the MLmodel.
        mlflow.onnx.save_model(onx, str(d), signature=sig,
                               onnx_session_options={"intra_op_num_threads": 1,
                                                     "inter_op_num_threads": 1},
                               pip_requirements=["onnxruntime"])
        cases.append(ModelCase(key, label, d, d / "model.onnx", Xte.copy()))
    return cases


def ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def ort_records(outs) -> list[dict]:
    labels, probs = outs
    return [{"output_label": int(l), "output_probability": {str(k): float(v) for k, v in p.items()}}
            for l, p in zip(labels, probs)]


def in_process_p50(case: ModelCase, seconds: float) -> dict:
    """p50/p99 (us) of InferenceSession.run on the single row, many iterations."""
    sess = ort_session(case.onnx_path)
    name = sess.get_inputs()[0].name
    case.input_name = name
    x1 = case.X[:1].copy()
    xb = case.X.copy()
    case.ref_single = ort_records(sess.run(None, {name: x1}))
    case.ref_batch = ort_records(sess.run(None, {name: xb}))
    out = {}
    for tag, x in (("single", x1), ("batch", xb)):
        feed = {name: x}
        for _ in range(2000):
            sess.run(None, feed)
        lat = []
        deadline = time.perf_counter() + seconds
        pc = time.perf_counter
        while pc() < deadline:
            for _ in range(200):
                t0 = pc()
                sess.run(None, feed)
                lat.append(pc() - t0)
        out[tag] = {"p50": pct(lat, 50) * 1e6, "p99": pct(lat, 99) * 1e6, "n": len(lat)}
    return out


# --------------------------------------------------------------------------------------
# request bodies and answers


def bodies(case: ModelCase, root: Path) -> dict[str, Path]:
    def split(rows: np.ndarray) -> bytes:
        # float32 -> Python float keeps the exact value; the servers cast back to float32
        data = [[float(v) for v in r] for r in rows]
        return json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode()

    x1 = case.X[:1]
    v2 = {"inputs": [{"name": case.input_name, "shape": [1, N_FEATURES], "datatype": "FP32",
                      "data": [float(v) for v in x1[0]]}]}
    out = {}
    for tag, b in (("single", split(x1)), ("batch", split(case.X)), ("v2", json.dumps(v2).encode())):
        p = root / f"{case.key}-{tag}.json"
        p.write_bytes(b)
        out[tag] = p
    return out


def check_records(server: str, what: str, got, want: list[dict], anom: Anomalies) -> bool:
    """Predictions (records) equal to the in-process ones: labels equal, probabilities 1e-5."""
    preds = got.get("predictions") if isinstance(got, dict) else None
    if not isinstance(preds, list) or len(preds) != len(want):
        anom.add(server, what, f"expected {len(want)} prediction records, got "
                 f"{json.dumps(got)[:300]}")
        return False
    for i, (g, w) in enumerate(zip(preds, want)):
        try:
            lab = g["output_label"]
            probs = {str(k): float(v) for k, v in g["output_probability"].items()}
        except (KeyError, TypeError, AttributeError, ValueError):
            anom.add(server, what, f"row {i}: expected output_label/output_probability, got "
                     f"{json.dumps(g)[:300]}")
            return False
        if int(lab) != w["output_label"] or set(probs) != set(w["output_probability"]) or any(
                abs(probs[k] - v) > PROB_TOL for k, v in w["output_probability"].items()):
            anom.add(server, what, f"row {i}: expected {w}, got {g}")
            return False
    return True


def check_v2(server: str, got, want: list[dict], anom: Anomalies) -> bool:
    try:
        outs = {o["name"]: o for o in got["outputs"]}
        label = outs["output_label"]["data"][0]
        prob = outs["output_probability"]
        classes = [str(c) for c in prob.get("parameters", {}).get("classes", [])]
        pdata = prob["data"]
    except (KeyError, TypeError, IndexError):
        anom.add(server, "V2 infer answer", f"unexpected shape {json.dumps(got)[:300]}")
        return False
    w = want[0]
    ok = int(label) == w["output_label"] and len(pdata) == len(w["output_probability"])
    if ok and classes:
        ok = all(abs(float(pdata[i]) - w["output_probability"][c]) <= PROB_TOL
                 for i, c in enumerate(classes))
    if not ok:
        anom.add(server, "V2 infer answer", f"expected {w}, got {json.dumps(got)[:300]}")
    return ok


# --------------------------------------------------------------------------------------
# servers


class ModelServer(Server):
    """tracking_bench.Server with the serving commands; ready when GET /ping answers 200."""

    def __init__(self, spec: ServerSpec, case: ModelCase, slipway_bin: str, log_dir: Path):
        super().__init__(f"{spec.key}-{case.key}", slipway_bin, log_dir)
        self.spec, self.case = spec, case

    def cmd(self) -> list[str]:
        if self.spec.kind == "mlflow":
            c = [str(REPO / ".venv/bin/mlflow"), "models", "serve", "-m", str(self.case.dir),
                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port)]
            if self.spec.workers:
                c += ["--workers", str(self.spec.workers)]
            return c
        c = [self.slipway_bin, "serve", str(self.case.dir), "--host", "127.0.0.1",
             "--port", str(self.port)]
        if self.spec.workers:
            c += ["--workers", str(self.spec.workers)]
        return c

    def env(self) -> dict:
        env = dict(os.environ)
        venv = str(REPO / ".venv")
        # mlflow runs `exec uvicorn ...` through a shell: the venv's bin must be on PATH;
        # slipway finds the onnxruntime wheel's library through VIRTUAL_ENV.
        env["PATH"] = f"{venv}/bin:{env.get('PATH', '')}"
        env.setdefault("VIRTUAL_ENV", venv)
        return env

    def start(self, timeout: float):
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        # start_new_session == setsid: own process group, killed as a whole in stop()
        self.proc = subprocess.Popen(self.cmd(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=str(self.data_dir), env=self.env())
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} during "
                                   f"startup\n{self.log_tail()}")
            try:
                if requests.get(self.base + "/ping", timeout=2).status_code == 200:
                    self.startup_s = time.perf_counter() - t0
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} not ready (/ping) after {timeout}s\n{self.log_tail()}")


# --------------------------------------------------------------------------------------
# wrk

WRK_POST = r"""
local f = assert(io.open("%(body)s", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""

WRK_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"mean":%%.1f,"max":%%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def wrk_version() -> str:
    try:
        p = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).splitlines()[0].split(" Copyright")[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def run_wrk(url: str, body: Path | None, w: Workload, seconds: float, tmp: Path) -> dict:
    """wrk against url: POST of the file `body` (GET when None); its done() prints JSON."""
    lua = tmp / f"{body.stem if body else 'get'}.lua"
    lua.write_text((WRK_POST % {"body": str(body)} if body else "") + WRK_DONE % {})
    seconds = max(1, int(round(seconds)))  # wrk takes whole seconds
    cmd = ["wrk", "-t", str(w.threads), "-c", str(w.connections), "-d", f"{seconds}s",
           "--timeout", "10s", "--latency", "-s", str(lua), url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^WRKJSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stdout[-500:]} {p.stderr[-500:]}")
    r = json.loads(m.group(1))
    m2 = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    r["non2xx"] = int(m2.group(1)) if m2 else 0
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["cmd"] = " ".join(cmd)
    return r


# --------------------------------------------------------------------------------------
# results


class Table:
    def __init__(self):
        # (model, row key) -> {"label", "unit", "higher", "values": {col: v}, "notes": {col: s}}
        self.rows: dict[tuple[str, str], dict] = {}

    def put(self, model: str, key: str, label: str, unit: str, higher: bool, col: str,
            value: float, note: str = ""):
        r = self.rows.setdefault((model, key), {"label": label, "unit": unit, "higher": higher,
                                               "values": {}, "notes": {}})
        r["values"][col] = value
        if note:
            r["notes"][col] = note


def fmtv(v, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "req/s":
        return f"{v:,.0f} req/s" if v >= 100 else f"{v:,.1f} req/s"
    if unit == "us":
        return f"{v / 1000:,.2f} ms" if v >= 10_000 else f"{v:,.0f} us"
    if unit == "MiB":
        return f"{v / MiB:,.1f} MiB"
    if unit == "s":
        return f"{v:,.2f} s"
    return f"{v:,.3g} {unit}"


def render(table: Table, specs: list[ServerSpec], cases: list[ModelCase]) -> str:
    cols = [s for s in specs]
    head = "| model | workload | " + " | ".join(s.label for s in cols)
    has = {s.key for s in cols}
    ratio_cols = [c for c in ("mlflow", "mlflow_w2") if c in has and "slipway" in has]
    head += "".join(f" | slipway vs {'mlflow' if c == 'mlflow' else 'mlflow w2'}"
                    for c in ratio_cols) + " |"
    lines = [head, "|" + "---|" * (2 + len(cols) + len(ratio_cols))]
    labels = {c.key: c.label for c in cases}
    morder = {c.key: i for i, c in enumerate(cases)}
    korder = ["start"] + [f"{w.key}_{m}" for w in WORKLOADS + [V2_WORKLOAD, PING_WORKLOAD]
                          for m in ("rps", "p50", "p99")] + ["rss"]
    rows = sorted(table.rows.items(), key=lambda kv: (
        morder.get(kv[0][0], 99), korder.index(kv[0][1]) if kv[0][1] in korder else 999))
    for (model, _key), r in rows:
        cells = []
        for s in cols:
            v = r["values"].get(s.key)
            c = fmtv(v, r["unit"]) if v is not None else "-"
            if r["notes"].get(s.key):
                c += f" ({r['notes'][s.key]})"
            cells.append(c)
        ratios = []
        for c in ratio_cols:
            a, b = r["values"].get(c), r["values"].get("slipway")
            if a and b and a == a and b == b and a > 0 and b > 0:
                ratios.append(f"{(b / a if r['higher'] else a / b):,.1f}x")
            else:
                ratios.append("n/a")
        lines.append(f"| {labels.get(model, model)} | {r['label']} | " + " | ".join(cells)
                     + "".join(f" | {x}" for x in ratios) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------


def run_one(spec: ServerSpec, case: ModelCase, body: dict[str, Path], args, table: Table,
            anom: Anomalies, tmp: Path, wrk_cmds: dict[str, str], raw: dict):
    srv = ModelServer(spec, case, args.slipway_bin, tmp)
    print(f"\n== {spec.label} / {case.key}: {' '.join(srv.cmd())}", flush=True)
    col = spec.key
    raw.setdefault("cmds", {}).setdefault(col, " ".join(srv.cmd()).replace(str(case.dir), "MODEL_DIR")
                                          .replace(f" {srv.port}", " PORT"))
    try:
        srv.start(timeout=180 if spec.kind == "mlflow" else 60)
        print(f"   ready (/ping 200) after {srv.startup_s:.2f} s", flush=True)
        table.put(case.key, "start", "start until /ping = 200", "s", False, col, srv.startup_s)
        time.sleep(1)
        rss_idle = tree_rss(srv.proc.pid)
        nproc = 1 + len(psutil.Process(srv.proc.pid).children(recursive=True))
        url = srv.base + "/invocations"
        # correctness before measuring: the same answers as in-process onnxruntime
        ok = True
        for tag, want in (("single", case.ref_single), ("batch", case.ref_batch)):
            r = requests.post(url, data=body[tag].read_bytes(),
                              headers={"Content-Type": "application/json"}, timeout=60)
            if r.status_code != 200:
                anom.add(col, f"POST /invocations ({tag})",
                         f"expected 200, got {r.status_code} {r.text[:300]}")
                ok = False
                continue
            raw.setdefault(case.key, {}).setdefault(tag, {})[col] = r.json()
            ok &= check_records(col, f"POST /invocations {case.key} {tag}", r.json(), want, anom)
        workloads = list(WORKLOADS)
        v2url = None
        if spec.kind == "slipway" and not args.no_v2:
            # the V2 name a server gives the model ('model' for a local directory): ask /v1/models
            try:
                name = requests.get(srv.base + "/v1/models", timeout=10).json()["models"][0]
            except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
                name = case.dir.name
            v2url = f"{srv.base}/v2/models/{name}/infer"
            r = requests.post(v2url, data=body["v2"].read_bytes(),
                              headers={"Content-Type": "application/json"}, timeout=60)
            if r.status_code != 200:
                anom.add(col, f"POST /v2/models/{name}/infer",
                         f"expected 200, got {r.status_code} {r.text[:300]}")
            elif check_v2(col, r.json(), case.ref_single, anom):
                workloads.append(V2_WORKLOAD)
        if not args.no_ping:
            workloads.append(PING_WORKLOAD)
        if not ok:
            print("   answers differ from in-process onnxruntime (see anomalies); measuring anyway",
                  flush=True)
        with RssSampler(srv.proc.pid) as rss:
            for w in workloads:
                u = {"v2": v2url, "ping": srv.base + "/ping"}.get(w.body, url)
                b = body.get(w.body)
                if args.warmup > 0:
                    run_wrk(u, b, w, args.warmup, tmp)
                r = run_wrk(u, b, w, args.duration, tmp)
                wrk_cmds.setdefault(w.key, r["cmd"].replace(str(tmp), "$TMP")
                                    .replace(srv.base, "$URL"))
                bad = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
                note = ""
                if bad:
                    note = (f"{r['non2xx']} non-2xx, {r['connect'] + r['read'] + r['write']} "
                            f"socket errors, {r['timeout']} timeouts of {r['requests']}")
                    anom.add(col, f"{case.key} {w.label}", note)
                rps = (r["requests"] - r["non2xx"]) / (r["duration_us"] / 1e6)
                extra = f"{rps * w.rows:,.0f} rows/s" if w.rows > 1 else ""
                table.put(case.key, f"{w.key}_rps", f"{w.label}: throughput", "req/s", True, col,
                          rps, note or extra)
                table.put(case.key, f"{w.key}_p50", f"{w.label}: p50", "us", False, col, r["p50"])
                table.put(case.key, f"{w.key}_p99", f"{w.label}: p99", "us", False, col, r["p99"])
                raw.setdefault("wrk", {}).setdefault(case.key, {}).setdefault(col, {})[w.key] = r
                print(f"   {w.label:32s} {rps:>10,.0f} req/s  p50 {r['p50']:>7,} us  "
                      f"p99 {r['p99']:>8,} us  ({r['requests']:,} requests"
                      f"{', ' + note if note else ''})", flush=True)
        table.put(case.key, "rss", "server RSS peak (process tree) during the runs", "MiB",
                  False, col, rss.peak, f"idle {rss_idle / MiB:,.0f}, {nproc} proc")
        if not srv.alive():
            anom.add(col, "server process", f"exited with {srv.proc.returncode}\n{srv.log_tail()}")
    except Exception as e:
        print(f"   FAILED: {e}", flush=True)
        anom.add(col, f"{case.key}", f"harness exception: {e!r}")
        traceback.print_exc()
    finally:
        srv.stop()
        srv.cleanup()


def compare_servers(raw: dict, cases: list[ModelCase], anom: Anomalies):
    """mlflow's and slipway's answers to the sample requests against each other."""
    for c in cases:
        for tag in ("single", "batch"):
            got = raw.get(c.key, {}).get(tag, {})
            if "mlflow" not in got or "slipway" not in got:
                continue
            m = got["mlflow"]["predictions"]
            want = [{"output_label": int(r["output_label"]),
                     "output_probability": {str(k): float(v)
                                            for k, v in r["output_probability"].items()}}
                    for r in m]
            check_records("slipway", f"{c.key} {tag}: slipway vs mlflow answers", got["slipway"],
                          want, anom)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 s per workload, 1 s warm-up, logreg only")
    ap.add_argument("--only", choices=["mlflow", "slipway"], help="benchmark one server only")
    ap.add_argument("--no-mlflow-w2", action="store_true", help="skip the mlflow --workers 2 column")
    ap.add_argument("--models", nargs="+", choices=["logreg", "rf"], help="default: both (quick: logreg)")
    ap.add_argument("--duration", type=float, help="seconds per measured workload (default 15, quick 5)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per workload (default 3, quick 1)")
    ap.add_argument("--no-v2", action="store_true", help="skip the slipway V2 endpoint row")
    ap.add_argument("--no-ping", action="store_true", help="skip the GET /ping (HTTP floor) row")
    ap.add_argument("--write-results", action="store_true",
                    help="add a dated subsection to the '## Serving' section of bench/RESULTS.md")
    ap.add_argument("--slipway-bin", default=os.environ.get("SLIPWAY_BIN") or
                    str(REPO / "target/release/slipway"))
    args = ap.parse_args()
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    models = args.models or (["logreg"] if args.quick else ["logreg", "rf"])

    specs = [s for s in SERVER_SPECS if not args.only or s.kind == args.only]
    if args.no_mlflow_w2:
        specs = [s for s in specs if s.key != "mlflow_w2"]
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk (Debian/Ubuntu), see bench/README.md")
    if any(s.kind == "slipway" for s in specs) and not os.access(args.slipway_bin, os.X_OK):
        sys.exit(f"slipway binary not found or not executable: {args.slipway_bin} "
                 f"(set SLIPWAY_BIN or --slipway-bin, or use --only mlflow)")
    if any(s.kind == "mlflow" for s in specs) and not (REPO / ".venv/bin/mlflow").exists():
        sys.exit(f"{REPO / '.venv/bin/mlflow'} missing (pip install mlflow==3.17.2 into .venv)")

    mode = "quick" if args.quick else "full"
    kinds = sorted({s.kind for s in specs})
    desc = machine_description(args.slipway_bin, kinds)

    def ver(p):
        try:
            return metadata.version(p)
        except metadata.PackageNotFoundError:
            return "not installed"

    desc.append(f"- scikit-learn {ver('scikit-learn')}, skl2onnx {ver('skl2onnx')}, onnx "
                f"{ver('onnx')}, onnxruntime {ver('onnxruntime')} (python; slipway loads the same "
                f"wheel's library), numpy {ver('numpy')}, pandas {ver('pandas')}, "
                f"uvicorn {ver('uvicorn')}")
    desc.append(f"- load generator: {wrk_version()}, on the same 2 cores as the server")
    print(f"# Slipway serving benchmark ({mode}: {args.duration:g} s per workload after "
          f"{args.warmup:g} s warm-up)")
    print("\n".join(desc), flush=True)
    load = os.getloadavg()
    print(f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + ("  (WARNING: the machine is busy; numbers will be noisy)" if load[0] > 0.7 else ""))
    desc.append(f"- load average before the run: {load[0]:.2f} (1 min)")
    stray = sorted(k for k in os.environ if (k.startswith("SLIPWAY_") and k != "SLIPWAY_BIN")
                   or k.startswith("MLFLOW_") or k in ("OMP_NUM_THREADS", "ORT_DYLIB_PATH"))
    if stray:
        print(f"- note: the servers inherit these environment variables: {', '.join(stray)}")
        desc.append(f"- servers inherited: {', '.join(stray)}")

    anom, table, raw = Anomalies(), Table(), {}
    tmp = Path(tempfile.mkdtemp(prefix="slipway-serving-bench-"))
    t_all = time.perf_counter()
    overhead: dict[str, dict] = {}
    wrk_cmds: dict[str, str] = {}
    try:
        print("\n== training and exporting models", flush=True)
        cases = build_models(tmp / "models", models)
        body = {}
        for c in cases:
            ip = in_process_p50(c, 2.0 if args.quick else 5.0)  # also sets c.input_name
            body[c.key] = bodies(c, tmp)
            overhead[c.key] = {"inproc": ip}
            print(f"   {c.key}: in-process onnxruntime run: 1 row p50 {ip['single']['p50']:.1f} us "
                  f"p99 {ip['single']['p99']:.1f} us; {BATCH_ROWS} rows p50 "
                  f"{ip['batch']['p50']:.1f} us ({ip['single']['n']:,} / {ip['batch']['n']:,} "
                  f"iterations)", flush=True)
        for c in cases:
            for s in specs:
                run_one(s, c, body[c.key], args, table, anom, tmp, wrk_cmds, raw)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    compare_servers(raw, cases, anom)

    # overhead: slipway p50 at concurrency 1 minus in-process onnxruntime p50, same row
    ov_lines = []
    w = raw.get("wrk", {})
    for c in cases:
        ip = overhead[c.key]["inproc"]["single"]["p50"]
        sw = w.get(c.key, {}).get("slipway", {})
        parts = [f"in-process `InferenceSession.run` p50 {ip:.1f} us"]
        for k, name in (("c1", "POST /invocations (dataframe_split)"),
                        ("v2c1", "POST /v2/models/NAME/infer (JSON)")):
            if k in sw:
                d = sw[k]["p50"] - ip
                overhead[c.key][k] = d
                parts.append(f"slipway {name} p50 {sw[k]['p50']} us -> overhead {d:,.0f} us")
        if "ping" in sw:
            parts.append(f"for scale: slipway GET /ping p50 (HTTP round trip through wrk, no "
                         f"model) {sw['ping']['p50']} us")
        if "mlflow" in w.get(c.key, {}) and "c1" in w[c.key]["mlflow"]:
            d = w[c.key]["mlflow"]["c1"]["p50"] - ip
            parts.append(f"(mlflow: {w[c.key]['mlflow']['c1']['p50']:,} us -> {d:,.0f} us)")
        ov_lines.append(f"- {c.label}: " + "; ".join(parts))

    aims = []
    for c in cases:
        rws = w.get(c.key, {})
        for mk in ("mlflow", "mlflow_w2"):
            if mk in rws and "slipway" in rws:
                rs = []
                for wk in ("c1", "c16", "b100"):
                    if wk in rws[mk] and wk in rws["slipway"]:
                        rs.append(f"{wk} {rws['slipway'][wk]['rps'] / rws[mk][wk]['rps']:,.1f}x")
                aims.append(f"- {c.key}: throughput slipway / {mk}: " + ", ".join(rs))
        if "c1" in overhead[c.key]:
            aims.append(f"- {c.key}: p50 overhead at concurrency 1: {overhead[c.key]['c1']:,.0f} us "
                        f"(aim: < 100 us) -> {'met' if overhead[c.key]['c1'] < 100 else 'NOT met'}")

    tbl = render(table, specs, cases)
    notes = anom.summary()
    print(f"\n## Results ({mode}, {time.perf_counter() - t_all:.0f} s wall)\n")
    print(tbl)
    print("\nratio: >1 means slipway is better (throughput: slipway/mlflow; latency and memory: "
          "mlflow/slipway)")
    print("\n### Overhead over in-process ONNX Runtime (p50, one row, concurrency 1)\n")
    print("\n".join(ov_lines))
    print("\n### Against the aims (20x throughput, < 100 us p50 overhead)\n")
    print("\n".join(aims))
    if notes:
        print("\n### Server misbehaviour / anomalies")
        for n in notes:
            print(f"- {n}")

    if args.write_results:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out = REPO / "bench/RESULTS.md"
        cmds = [f"    {c}" for c in raw.get("cmds", {}).values()]
        sec = [f"### {stamp} ({mode}: {args.duration:g} s per workload after {args.warmup:g} s "
               f"warm-up{', only ' + args.only if args.only else ''})", ""]
        sec += desc + ["", "Reproduce: `SLIPWAY_BIN=... .venv/bin/python bench/serving_bench.py"
                       + (" --quick" if args.quick else "") + " --write-results`. Servers "
                       "(one at a time, MODEL_DIR written by `mlflow.onnx.save_model`):", ""]
        sec += cmds
        sec += ["", "Load (wrk; the POST bodies are MLflow `dataframe_split` JSON, V2 JSON for "
                "the V2 row):", ""]
        sec += [f"    {c}" for c in wrk_cmds.values()] + [""]
        sec += [tbl, "", "ratio: >1 means slipway is better (throughput: slipway/mlflow; "
                "latency and memory: mlflow/slipway)", "",
                "Overhead over in-process ONNX Runtime (p50, one row, concurrency 1):", ""]
        sec += ov_lines + ["", "Against the aims:", ""] + aims + [""]
        if notes:
            sec += ["Anomalies:", ""] + [f"- {n}" for n in notes] + [""]
        write_serving_section(out, sec)
        print(f"\nwritten to the '## Serving' section of {out}")
    return 1 if notes else 0


SERVING_INTRO = [
    "## Serving",
    "",
    "Produced by `bench/serving_bench.py --write-results` (newest subsection last); see "
    "bench/README.md, section \"Serving benchmark\", for what each row means and the caveats "
    "(notably: wrk runs on the same 2 cores as the server).",
    "",
]


def write_serving_section(out: Path, sec: list[str]):
    """Add `sec` at the end of the '## Serving' section (created at the end if missing);
    every other section is kept as it is."""
    text = out.read_text() if out.exists() else "# Benchmark results\n"
    lines = text.rstrip("\n").split("\n")
    try:
        start = lines.index("## Serving")
    except ValueError:
        lines += [""] + SERVING_INTRO + sec
        out.write_text("\n".join(lines).rstrip("\n") + "\n")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = lines[start:end]
    while body and body[-1] == "":
        body.pop()
    new = lines[:start] + body + [""] + sec + ([""] if end < len(lines) else []) + lines[end:]
    out.write_text("\n".join(new).rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
