"""Monitors on deployments, end to end: a classifier logged with the real mlflow client
(its training data logged beside it), deployed, sent traffic whose features shift halfway,
labelled later for some requests; the monitor must find drift in the later windows only,
the accuracy drop, and deliver exactly one alert to a webhook receiver that fails its first
delivery. Every expected number is computed here from what was sent.
"""

import json
import os
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import serving_helpers as sh
from conftest import free_port, unique

WINDOW_S = 5
REQUESTS_PER_PHASE = 30
ROWS_PER_REQUEST = 20
SHIFT = 3.0
FEATURES = ["f0", "f1", "f2", "f3"]


class Receiver:
    """A webhook receiver that answers 503 to its first POST, then 200; over https when given
    a certificate and its key."""

    def __init__(self, tls=None):
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    first = not outer.posts
                    outer.posts.append((self.headers.get("Idempotency-Key"), json.loads(body)))
                self.send_response(503 if first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/hook"

    def snapshot(self):
        with self.lock:
            return list(self.posts)

    def close(self):
        self.server.shutdown()


def truth(X, shifted):
    # Before the shift the model's own rule; after it, a boundary the model never saw.
    return ((X[:, 0] + X[:, 1]) > (2 * SHIFT if shifted else 0.0)).astype(np.int64)


def self_signed(root):
    """A certificate for 127.0.0.1 and its key, made by the openssl command line."""
    cert, key = root / "hook-cert.pem", root / "hook-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def mon(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("monitoring")
    tls = self_signed(root)
    # The server trusts the webhook's certificate the way OpenSSL-based tools are told to.
    env = dict(os.environ, SSL_CERT_FILE=str(tls[0]))
    srv = sh.ServingServer(root / "data", root / "logs", ["--monitor-interval-secs", "3600"], env=env)
    srv.start()
    rng = np.random.default_rng(5)
    X = rng.normal(0, 1, (2000, 4)).astype(np.float32)
    y = truth(X, False)
    model = LogisticRegression().fit(X, y)
    name = unique("mon-model")
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient(srv.url).create_experiment(unique("mon-exp")))
    train = pd.DataFrame(X.astype(np.float64), columns=FEATURES)
    train["label"] = y
    csv = root / "train.csv"
    train.to_csv(csv, index=False)
    with mlflow.start_run():
        sh.log_onnx(sh._to_onnx(model, X), name, X, model.predict(X))
        mlflow.log_artifact(str(csv), artifact_path="reference")
    mlflow.MlflowClient(srv.url).set_registered_model_alias(name, "champion", "1")
    dep = unique("mon-dep")
    r = requests.post(f"{srv.url}/api/v1/deployments", json={"name": dep, "model": name, "alias": "champion"}, timeout=60)
    assert r.status_code == 200, r.text
    receiver = Receiver()
    state = type("Mon", (), {})()
    state.srv, state.dep, state.model, state.receiver, state.tls = srv, dep, model, receiver, tls
    yield state
    receiver.close()
    srv.stop()


def monitor_spec(mon, name, **overrides):
    spec = {
        "name": name,
        "deployment": mon.dep,
        "reference": {"run_artifact": "reference/train.csv"},
        "features": FEATURES,
        "target": "label",
        "window_seconds": WINDOW_S,
        "alerts": [
            {"name": "feature-drift", "series": "drift.share", "op": ">=", "threshold": 0.5, "webhook": mon.receiver.url}
        ],
    }
    spec.update(overrides)
    return spec


def sleep_to_next_window():
    now = time.time()
    time.sleep(WINDOW_S - now % WINDOW_S + 0.2)


def send_phase(mon, rng, shifted):
    sent = []
    for _ in range(REQUESTS_PER_PHASE):
        X = rng.normal(0, 1, (ROWS_PER_REQUEST, 4)).astype(np.float32)
        if shifted:
            X[:, 0] += SHIFT
            X[:, 1] += SHIFT
        rid = uuid.uuid4().hex
        r = requests.post(
            f"{mon.srv.url}/serving/{mon.dep}/invocations",
            json={"inputs": X.tolist()},
            headers={"X-Request-Id": rid},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == rid
        out = r.json()["predictions"]
        # skl2onnx names the outputs output_label and output_probability.
        preds = np.array(out["output_label"])
        sent.append((rid, X, preds, truth(X, shifted)))
    return sent


def evaluate(mon, name):
    r = requests.post(f"{mon.srv.url}/api/v1/monitors/{name}/evaluate", timeout=120)
    assert r.status_code == 200, r.text
    r = requests.get(f"{mon.srv.url}/api/v1/monitors/{name}/windows", timeout=60)
    assert r.status_code == 200, r.text
    return [w for w in r.json()["windows"] if w["rows"] > 0]


def test_drift_accuracy_drop_and_one_alert(mon):
    name = unique("mon")
    r = requests.post(f"{mon.srv.url}/api/v1/monitors", json=monitor_spec(mon, name), timeout=60)
    assert r.status_code == 200, r.text
    rng = np.random.default_rng(11)

    sleep_to_next_window()
    t0 = time.time()
    before = send_phase(mon, rng, shifted=False)
    t1 = time.time()
    sleep_to_next_window()
    t2 = time.time()
    after = send_phase(mon, rng, shifted=True)
    t3 = time.time()
    sleep_to_next_window()

    def phase_of(w):
        start, end = w["start_ms"] / 1000, w["end_ms"] / 1000
        if start <= t1 and end > t0:
            return "before"
        if start <= t3 and end > t2:
            return "after"
        return "other"

    # Before any label arrives: drift is known, performance is not.
    windows = evaluate(mon, name)
    assert sum(w["rows"] for w in windows) == 2 * REQUESTS_PER_PHASE * ROWS_PER_REQUEST
    phases = [phase_of(w) for w in windows]
    assert "other" not in phases, (phases, windows)
    assert set(phases) == {"before", "after"}
    for w, phase in zip(windows, phases):
        s = w["series"]
        assert s["drift.dataset"] == (1.0 if phase == "after" else 0.0), (phase, s)
        # The shifted features drift after the shift; a single unshifted feature may still
        # cross Evidently's 0.1 Wasserstein threshold by chance, so only the verdict is exact.
        if phase == "after":
            assert (s["feature.f0.drifted"], s["feature.f1.drifted"]) == (1.0, 1.0), s
        # Validation against the schema inferred from the reference: never a type or null
        # fault (float features, no nulls); after a 3-sigma shift, f0 exceeds the training max.
        violations = w["drift"]["validation"]
        assert s["quality.violations"] == len(violations)
        assert {v["rule"] for v in violations} <= {"min", "max"}, violations
        if phase == "after":
            assert any(v["column"] == "f0" and v["rule"] == "max" for v in violations), violations
            assert s["feature.f0.out_of_range_share"] > 0
        assert s["performance.labelled_rows"] == 0
        assert "performance.accuracy" not in s

    # Labels arrive later, for two requests in three, in one bulk call.
    labelled = {}
    posted = []
    for i, (rid, _, preds, y) in enumerate(before + after):
        if i % 3 != 2:
            labelled[rid] = (preds, y)
            posted.append({"request_id": rid, "labels": y.tolist()})
    r = requests.post(f"{mon.srv.url}/api/v1/deployments/{mon.dep}/ground-truth", json={"labels": posted}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(posted)}

    windows = evaluate(mon, name)
    by_phase = {"before": [], "after": []}
    for w in windows:
        by_phase[phase_of(w)].append(w)
    for phase, sent in (("before", before), ("after", after)):
        preds = np.concatenate([labelled[rid][0] for rid, *_ in sent if rid in labelled])
        ys = np.concatenate([labelled[rid][1] for rid, *_ in sent if rid in labelled])
        want_acc = float((preds == ys).mean())
        ws = by_phase[phase]
        assert sum(w["series"]["performance.labelled_rows"] for w in ws) == len(ys)
        # A phase may straddle windows; the labelled-rows-weighted accuracy is the phase's.
        got = sum(w["series"]["performance.accuracy"] * w["series"]["performance.labelled_rows"] for w in ws) / len(ys)
        assert got == pytest.approx(want_acc, abs=1e-12), phase
    acc = lambda ws: min(w["series"]["performance.accuracy"] for w in ws)
    assert acc(by_phase["before"]) > 0.9
    assert max(w["series"]["performance.accuracy"] for w in by_phase["after"]) < 0.75
    assert all("performance.roc_auc" in w["series"] for w in windows)

    # Exactly one alert: the first drifted window; its first delivery failed and was retried.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = requests.get(f"{mon.srv.url}/api/v1/monitors/{name}/alerts", timeout=60).json()["alerts"]
        if alerts and alerts[0]["status"] != "pending":
            break
        time.sleep(0.2)
    assert len(alerts) == 1, alerts
    event = alerts[0]
    assert (event["status"], event["attempts"], event["rule"]) == ("delivered", 2, "feature-drift")
    assert event["window_start_ms"] == min(w["start_ms"] for w in by_phase["after"])
    posts = mon.receiver.snapshot()
    assert len({key for key, _ in posts}) == 1, posts
    assert len(posts) == 2
    body = posts[-1][1]
    assert (body["monitor"], body["deployment"], body["series"]) == (name, mon.dep, "drift.share")
    assert body["value"] >= 0.5

    # Evaluating again (and again) does not fire again.
    evaluate(mon, name)
    evaluate(mon, name)
    assert len(requests.get(f"{mon.srv.url}/api/v1/monitors/{name}/alerts", timeout=60).json()["alerts"]) == 1
    assert len(mon.receiver.snapshot()) == 2

    # The latest window is on /metrics.
    text = requests.get(f"{mon.srv.url}/metrics", timeout=60).text
    values = sh.metric_values(text, "slipway_monitor_value", monitor=name, series="drift.dataset")
    assert values == [1.0], values
    assert sh.metric_values(text, "slipway_monitor_alerts_total", monitor=name, rule="feature-drift") == [1.0]


def test_bad_monitor_and_label_input_is_refused_and_writes_nothing(mon):
    url = mon.srv.url
    name = unique("bad")
    cases = [
        (monitor_spec(mon, name, deployment="no-such-deployment"), 404, "RESOURCE_DOES_NOT_EXIST"),
        (monitor_spec(mon, name, column_methods={"f0": "nope"}), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, reference={"uri": "file:///etc/passwd.csv"}), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, window_seconds=0), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, unknown_field=1), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, window_seconds="hourly"), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, reference={"uri": "runs:/abc/%2e%2e/%2e%2e/secret.csv"}, alerts=[]), 200, None),
        ({k: v for k, v in monitor_spec(mon, name).items() if k != "reference"}, 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, numerical_columns=["f0"], categorical_columns=["f0"]), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, categorical_columns="f0"), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, schema={"columns": "none"}), 400, "INVALID_PARAMETER_VALUE"),
        (monitor_spec(mon, name, schema={"format": "slipway-schema/1", "columns": [{"name": "f0", "type": "complex"}]}),
         400, "INVALID_PARAMETER_VALUE"),
    ]
    for spec, status, code in cases:
        r = requests.post(f"{url}/api/v1/monitors", json=spec, timeout=60)
        if status == 200:
            # Percent-escapes in a reference are file-name text, never decoded into '..': the
            # monitor is stored, and its evaluation finds no such run rather than escaping.
            assert r.status_code == 200, r.text
            ev = requests.post(f"{url}/api/v1/monitors/{name}/evaluate", timeout=60)
            assert (ev.status_code, ev.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST"), ev.text
            assert requests.delete(f"{url}/api/v1/monitors/{name}", timeout=60).status_code == 200
            continue
        assert (r.status_code, r.json()["error_code"]) == (status, code), (spec, r.text)
    assert name not in [m["name"] for m in requests.get(f"{url}/api/v1/monitors", timeout=60).json()["monitors"]]
    for path in ["..%2f..%2fetc", "%2e%2e", "no-such-monitor"]:
        r = requests.get(f"{url}/api/v1/monitors/{path}/windows", timeout=60)
        assert r.status_code == 404 and r.json()["error_code"] in ("RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"), r.text
    big = {"labels": [{"request_id": f"r{i}", "label": 1} for i in range(100_001)]}
    r = requests.post(f"{url}/api/v1/deployments/{mon.dep}/ground-truth", json=big, timeout=120)
    assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), r.text[:300]

    gt = f"{url}/api/v1/deployments/{mon.dep}/ground-truth"
    bad_bodies = [
        {"labels": [{"request_id": "", "label": 1}]},
        {"labels": [{"request_id": "a", "label": 1, "labels": [1]}]},
        {"labels": [{"request_id": "a", "label": {"nested": 1}}]},
        {"labels": [{"request_id": "ok", "label": 1}, {"request_id": "a", "labels": []}]},
        {"rows": []},
        {"labels": "all of them"},
        {},
    ]
    for body in bad_bodies:
        r = requests.post(gt, json=body, timeout=60)
        assert (r.status_code, r.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE"), (body, r.text)
    r = requests.post(gt, data="{not json", headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400
    r = requests.post(f"{url}/api/v1/deployments/nope/ground-truth", json={"labels": []}, timeout=60)
    assert (r.status_code, r.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")

    # A monitor whose reference file does not exist says so when evaluated.
    name = unique("noref")
    spec = monitor_spec(mon, name, reference={"run_artifact": "reference/missing.csv"}, alerts=[])
    assert requests.post(f"{url}/api/v1/monitors", json=spec, timeout=60).status_code == 200
    r = requests.post(f"{url}/api/v1/monitors/{name}/evaluate", timeout=60)
    assert r.status_code == 400 and "missing.csv" in r.json()["message"], r.text
    assert requests.get(f"{url}/api/v1/monitors/{name}/windows", timeout=60).json()["windows"] == []
    assert mon.srv.alive()


def test_declared_types_an_uploaded_schema_and_an_https_webhook(mon):
    """A column declared categorical is tested as categories, an uploaded schema replaces the
    inferred one, and an alert reaches a webhook served over https."""
    receiver = Receiver(tls=mon.tls)
    try:
        name = unique("typed")
        schema = {
            "format": "slipway-schema/1",
            "allow_extra_columns": True,
            "columns": [{"name": "f0", "type": "string", "required": True, "nullable": False}],
        }
        spec = monitor_spec(
            mon, name, categorical_columns=["f3"], schema=schema,
            alerts=[{"name": "traffic", "series": "rows", "op": ">=", "threshold": 1, "webhook": receiver.url}],
        )
        r = requests.post(f"{mon.srv.url}/api/v1/monitors", json=spec, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["monitor"]["categorical_columns"] == ["f3"]
        sleep_to_next_window()
        send_phase(mon, np.random.default_rng(3), shifted=False)
        windows = evaluate(mon, name)
        assert windows
        for w in windows:
            methods = {c["column"]: (c["type"], c["method"]) for c in w["drift"]["features"]["columns"]}
            assert methods["f3"][0] == "categorical", methods
            assert methods["f3"][1] not in ("ks", "wasserstein"), methods
            assert methods["f2"][0] == "numeric", methods
            # The uploaded schema wants f0 as text; the inferred one never complains of types.
            violations = w["drift"]["validation"]
            assert any(v["column"] == "f0" and v["rule"] not in ("min", "max") for v in violations), violations
            assert not any(v["column"] == "f1" for v in violations), violations
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alerts = requests.get(f"{mon.srv.url}/api/v1/monitors/{name}/alerts", timeout=60).json()["alerts"]
            if alerts and all(a["status"] != "pending" for a in alerts):
                break
            time.sleep(0.2)
        assert alerts and all(a["status"] == "delivered" for a in alerts), alerts
        assert {body["monitor"] for _, body in receiver.snapshot()} == {name}
    finally:
        receiver.close()


def test_the_cli_creates_lists_labels_and_reads_windows(mon, tmp_path):
    from conftest import slipway_bin
    from registry_helpers import run_cli

    def cli(*args):
        proc = run_cli(slipway_bin(), "monitors", "--tracking-uri", mon.srv.url, *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    name = unique("cli")
    spec = tmp_path / "monitor.json"
    spec.write_text(json.dumps(monitor_spec(mon, name, alerts=[])))
    assert name in cli("create", str(spec))
    assert name in [m["name"] for m in json.loads(cli("list", "--json"))]

    sleep_to_next_window()
    t0 = time.time()
    sent = send_phase(mon, np.random.default_rng(3), shifted=False)[:5]
    t1 = time.time()
    sleep_to_next_window()
    labels = tmp_path / "labels.csv"
    lines = ["request_id,row,label"]
    for rid, _, _, y in sent:
        lines += [f"{rid},{row},{int(v)}" for row, v in enumerate(y)]
    labels.write_text("\n".join(lines) + "\n")
    assert json.loads(cli("labels", mon.dep, "--file", str(labels), "--json")) == {"accepted": len(sent)}

    evaluated = [w for w in json.loads(cli("evaluate", name, "--json")) if w["rows"] > 0]
    # The deployment's earlier traffic is evaluated too; this phase's windows hold the labels.
    mine = [w for w in evaluated if w["start_ms"] / 1000 <= t1 and w["end_ms"] / 1000 > t0]
    assert sum(w["series"]["performance.labelled_rows"] for w in mine) == len(sent) * ROWS_PER_REQUEST
    table = cli("windows", name, "--series", "rows,performance.labelled_rows")
    assert table.splitlines()[0].split() == ["START", "(UTC)", "ROWS", "rows", "performance.labelled_rows"]
    assert len(table.splitlines()) == 1 + len(evaluated)

    bad = run_cli(slipway_bin(), "monitors", "--tracking-uri", mon.srv.url, "labels", mon.dep, "--file", str(spec))
    assert bad.returncode == 1 and "request_id and label" in bad.stderr, bad.stderr
    assert "deleted" in cli("delete", name)
