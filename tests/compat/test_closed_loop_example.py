"""`examples/closed-loop` run as a new user runs it: prepare -> train (scikit-learn, exported
with skl2onnx, registered by the mlflow client) -> the built-in gate step, which promotes
`@champion` so that a deployment following the alias hot-swaps, and which stops a model
trained on shuffled labels. Nothing in the example is changed but its params file.
"""

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from concurrent.futures import ThreadPoolExecutor
from conftest import slipway_bin, unique
from registry_helpers import Api, assert_no_panic
from serving_helpers import DEPLOYMENTS, ServingServer, wait_deployment_ready

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "closed-loop"


def set_param(proj: Path, old: str, new: str):
    text = (proj / "params.yaml").read_text()
    assert old in text, old
    (proj / "params.yaml").write_text(text.replace(old, new))


def venv_path():
    """PATH with the test virtualenv first: the example's steps call `python`, as a user's
    activated environment provides it."""
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")).resolve() / "bin")
    return venv_bin + os.pathsep + os.environ["PATH"]


def run(server, proj, expect_rc=0):
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url, PATH=venv_path())
    p = subprocess.run(
        [slipway_bin(), "run", "--json"], cwd=proj, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert_no_panic(p)
    assert p.returncode == expect_rc, f"rc {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    summary = json.loads(p.stdout)
    return summary, {k: v["state"] for k, v in summary["steps"].items()}


def champion(client, model):
    return client.get_model_version_by_alias(model, "champion").version


class Traffic(threading.Thread):
    """Scores one holdout row against the deployment over and over; keeps every answer."""

    def __init__(self, url, row):
        super().__init__(daemon=True)
        self.url, self.row, self.stop, self.answers = url, row, threading.Event(), []

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            r = s.post(self.url, json={"dataframe_split": self.row}, timeout=30)
            self.answers.append((r.status_code, r.headers.get("X-Slipway-Model-Version"), r.text[:200]))
            time.sleep(0.02)


def test_the_example_retrains_gates_promotes_and_rejects(server, client, tmp_path):
    proj = tmp_path / "closed-loop"
    shutil.copytree(EXAMPLE, proj)
    model = unique("fraud-example")
    set_param(proj, "name: fraud-example", f"name: {model}")

    # 1. First run: nothing to beat, so version 1 is promoted.
    summary, states = run(server, proj)
    assert states == {"prepare": "done", "train": "done", "gate": "done"}, summary
    assert champion(client, model) == "1"
    train_run = client.get_run(summary["steps"]["train"]["run_id"])
    assert train_run.data.metrics["train_f1"] > 0.5
    gate_run = client.get_run(summary["steps"]["gate"]["run_id"])
    assert gate_run.data.metrics["gate.passed"] == 1.0

    # A deployment follows @champion; traffic flows through every later run.
    dep = unique("fraud")
    r = requests.post(f"{server.url}{DEPLOYMENTS}", json={"name": dep, "model": model, "alias": "champion"}, timeout=60)
    assert r.status_code == 200, r.text
    wait_deployment_ready(server.url, dep)
    holdout_head = (proj / "data" / "holdout.csv").read_text().splitlines()[:2]
    columns = holdout_head[0].split(",")[:-1]
    row = {"columns": columns, "data": [[float(v) for v in holdout_head[1].split(",")[:-1]]]}
    traffic = Traffic(f"{server.url}/serving/{dep}/invocations", row)
    traffic.start()
    try:
        # 2. Unchanged: nothing runs but the gate (cache: false), which keeps v1.
        summary, states = run(server, proj)
        assert states == {"prepare": "cached", "train": "cached", "gate": "done"}
        assert champion(client, model) == "1"

        # 3. The traffic shifts: new data, a retrained v2 that beats v1 and is promoted.
        set_param(proj, "shift: 0.0", "shift: 1.0")
        summary, states = run(server, proj)
        assert states == {"prepare": "done", "train": "done", "gate": "done"}
        assert champion(client, model) == "2"
        promoting_run = summary["run_id"]
        report = client.get_run(summary["steps"]["gate"]["run_id"]).data.metrics
        assert report["gate.candidate.f1"] > report["gate.champion.f1"], report
        deadline = time.monotonic() + 60
        while not any(v == "2" for _, v, _ in traffic.answers[-5:]):
            assert time.monotonic() < deadline, traffic.answers[-5:]
            time.sleep(0.1)

        # 4. A model trained on shuffled labels: the gate rejects it and v2 stays champion.
        set_param(proj, "shuffle_labels: false", "shuffle_labels: true")
        summary, states = run(server, proj, expect_rc=1)
        assert states == {"prepare": "cached", "train": "done", "gate": "failed"}
        assert summary["steps"]["gate"]["reason"] == "exited with status 3"
        assert champion(client, model) == "2"
        v3 = client.get_model_version(model, "3")
        assert v3.tags["slipway.gate"] == "rejected" and v3.tags["slipway.gate.reasons"]
    finally:
        traffic.stop.set()
        traffic.join(timeout=30)

    statuses = {s for s, _, _ in traffic.answers}
    assert statuses == {200}, [a for a in traffic.answers if a[0] != 200][:5]
    versions = [v for _, v, _ in traffic.answers]
    assert versions[0] == "1" and versions[-1] == "2" and "3" not in versions

    # The promotion is audited with the pipeline run as the actor.
    moves = Api(server.url).audit(name=model, action="set_alias")
    assert moves[-1]["after"] == {"alias": "champion", "version": "2"}, moves[-1]
    assert moves[-1]["actor"] == f"pipeline-run:{promoting_run}", moves[-1]


WINDOW_S = 5
COLUMNS = ["amount_z", "velocity_z", "age_z", "merchant_z"]


def pipeline_runs(client, name):
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.`slipway.pipeline` = '{name}'")


def wait_for(what, check, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def shifted_traffic(rng, rows):
    """Transactions after the world changed, labelled by the rule prepare.py uses at shift 1.0
    (the second signal has taken over from the first): what a model trained before cannot know."""
    X = rng.normal(size=(rows, 4))
    signal = 1.5 * X[:, 1] - 0.5 * X[:, 2] + rng.normal(scale=0.4, size=rows)
    return X, (signal > 0.6).astype(int)


def score(url, X):
    """One request per 20 rows; returns (request id, served version, predicted labels) each."""
    answers = []
    for chunk in np.array_split(X, len(X) // 20):
        r = requests.post(url, json={"dataframe_split": {"columns": COLUMNS, "data": chunk.tolist()}}, timeout=60)
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        labels = [p["label"] for p in predictions] if isinstance(predictions, list) else predictions["label"]
        answers.append((r.headers["X-Request-Id"], r.headers["X-Slipway-Model-Version"], [int(v) for v in labels]))
    return answers


def send_labels(srv, dep, answers, y):
    labels, at = [], 0
    for request_id, _, predicted in answers:
        labels.append({"request_id": request_id, "labels": [int(v) for v in y[at:at + len(predicted)]]})
        at += len(predicted)
    r = requests.post(f"{srv.url}/api/v1/deployments/{dep}/ground-truth", json={"labels": labels}, timeout=60)
    assert r.status_code == 200, r.text


def accuracy(answers, y):
    predicted = np.concatenate([p for _, _, p in answers])
    return float((predicted == y).mean())


def next_window():
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.2)


def evaluated_window(srv, monitor, window_start):
    """Waits for the window after `window_start` to end, evaluates it and returns it."""
    time.sleep(max(0.0, window_start + WINDOW_S + 0.3 - time.time()))
    r = requests.post(f"{srv.url}/api/v1/monitors/{monitor}/evaluate", timeout=120)
    assert r.status_code == 200, r.text
    windows = requests.get(f"{srv.url}/api/v1/monitors/{monitor}/windows", timeout=30).json()["windows"]
    return next(w for w in windows if w["start_ms"] == int(window_start) * 1000)


def test_labels_show_accuracy_fell_and_the_loop_retrains_swaps_and_recovers(tmp_path_factory):
    """train -> register -> deploy -> the traffic's meaning shifts -> labels arrive -> the
    monitor's accuracy alert fires -> its webhook starts the retraining pipeline in the server ->
    gate passes -> @champion moves -> the deployment answers with the new version, with no
    request failing during the swap, and accuracy on the shifted traffic recovers; then a storm
    of triggers starts one run."""
    import mlflow

    root = tmp_path_factory.mktemp("loop")
    proj = root / "closed-loop"
    shutil.copytree(EXAMPLE, proj)
    model = unique("fraud-loop")
    set_param(proj, "name: fraud-example", f"name: {model}")
    srv = ServingServer(
        root / "data", root / "logs", ["--monitor-interval-secs", "3600", "--pipeline", str(proj)],
        env=dict(os.environ, PATH=venv_path()),
    )
    srv.start()
    client = mlflow.MlflowClient(srv.url)
    traffic = None
    try:
        listed = requests.get(f"{srv.url}/api/v1/pipelines", timeout=30).json()["pipelines"]
        assert [p["name"] for p in listed] == ["fraud-retrain"]
        summary, _ = run(srv, proj)
        assert champion(client, model) == "1"

        dep = unique("fraud-live")
        r = requests.post(f"{srv.url}{DEPLOYMENTS}", json={"name": dep, "model": model, "alias": "champion"}, timeout=60)
        assert r.status_code == 200, r.text
        wait_deployment_ready(srv.url, dep)
        invocations = f"{srv.url}/serving/{dep}/invocations"
        monitor = unique("fraud-watch")
        trigger_url = f"{srv.url}/api/v1/pipelines/fraud-retrain/runs"
        spec = {
            "name": monitor, "deployment": dep, "reference": {"run_artifact": "reference/train.csv"},
            "target": "label", "features": COLUMNS, "window_seconds": WINDOW_S,
            "alerts": [{"name": "accuracy", "series": "performance.accuracy", "op": "<", "threshold": 0.8,
                        "webhook": trigger_url}],
        }
        r = requests.post(f"{srv.url}/api/v1/monitors", json=spec, timeout=60)
        assert r.status_code == 200, r.text

        # The world changes: this batch of data (what the retraining will read) and what the
        # traffic means. v1 goes on answering, worse than before; nobody can tell yet.
        set_param(proj, "shift: 0.0", "shift: 1.0")
        rng = np.random.default_rng(11)
        next_window()
        before_start = time.time() // WINDOW_S * WINDOW_S
        X, y = shifted_traffic(rng, 600)
        before = score(invocations, X)
        assert {v for _, v, _ in before} == {"1"}
        acc_before = accuracy(before, y)
        assert acc_before < 0.75, acc_before

        # Someone keeps using the model through everything that follows.
        X_live, _ = shifted_traffic(rng, 1)
        traffic = Traffic(invocations, {"columns": COLUMNS, "data": X_live.tolist()})
        traffic.start()

        # The labels arrive; the window's accuracy is the one the test measured, and it alerts.
        send_labels(srv, dep, before, y)
        window = evaluated_window(srv, monitor, before_start)
        assert window["series"]["performance.labelled_rows"] == 600, window["series"]
        assert abs(window["series"]["performance.accuracy"] - acc_before) < 1e-9, (window["series"], acc_before)

        # Nobody runs anything from here on: the alert's delivery starts the pipeline.
        alert = wait_for("the alert", lambda: [
            a for a in requests.get(f"{srv.url}/api/v1/monitors/{monitor}/alerts", timeout=30).json()["alerts"]
            if a["status"] == "delivered"
        ])[0]
        assert alert["rule"] == "accuracy", alert
        started = wait_for("the triggered run", lambda: pipeline_runs(client, "fraud-retrain")[:1]
                           if len(pipeline_runs(client, "fraud-retrain")) == 2 else None)[0]
        assert started.data.tags["slipway.trigger"] == f"{monitor}/accuracy/{alert['window_start_ms']}"
        assert started.data.tags["slipway.trigger.source"] == "webhook"
        wait_for("the promotion", lambda: champion(client, model) == "2")
        wait_for("the finished run", lambda: client.get_run(started.info.run_id).info.status == "FINISHED")
        wait_for("the swap", lambda: any(v == "2" for _, v, _ in traffic.answers[-5:]), timeout=60)
        traffic.stop.set()
        traffic.join(timeout=30)
        failed = [a for a in traffic.answers if a[0] != 200]
        assert not failed, failed[:5]
        versions = [v for _, v, _ in traffic.answers]
        assert versions[0] == "1" and versions[-1] == "2", versions
        # Once v2 answered, v1 never did again.
        assert "1" not in versions[versions.index("2"):], versions

        # On the same shifted traffic, accuracy recovers, as the monitor sees it too.
        next_window()
        after_start = time.time() // WINDOW_S * WINDOW_S
        X, y = shifted_traffic(rng, 600)
        after = score(invocations, X)
        assert {v for _, v, _ in after} == {"2"}
        acc_after = accuracy(after, y)
        assert acc_after > 0.85 and acc_after > acc_before + 0.15, (acc_before, acc_after)
        send_labels(srv, dep, after, y)
        window = evaluated_window(srv, monitor, after_start)
        assert abs(window["series"]["performance.accuracy"] - acc_after) < 1e-9, (window["series"], acc_after)

        # A redelivery of the same alert starts nothing.
        r = requests.post(trigger_url, headers={"Idempotency-Key": started.data.tags["slipway.trigger"]}, json={}, timeout=30)
        assert r.status_code == 200 and r.json()["outcome"] == "duplicate", r.text

        # 100 triggers in a second: one run; the rest join it.
        def fire(i):
            return requests.post(trigger_url, json={"trigger_key": f"storm-{i}"}, timeout=60).json()["outcome"]

        with ThreadPoolExecutor(20) as ex:
            outcomes = list(ex.map(fire, range(100)))
        assert outcomes.count("started") == 1 and outcomes.count("coalesced") == 99, outcomes
        runs = wait_for("the storm's run", lambda: [
            r for r in pipeline_runs(client, "fraud-retrain") if r.data.tags.get("slipway.trigger", "").startswith("storm-")
        ])
        assert len(runs) == 1
        wait_for("the storm's run to end", lambda: client.get_run(runs[0].info.run_id).info.status != "RUNNING")
        assert len(pipeline_runs(client, "fraud-retrain")) == 3

        # The native API shows the same runs and steps.
        listed = requests.get(trigger_url, timeout=30).json()["runs"]
        assert len(listed) == 3 and listed[0]["trigger"].startswith("storm-")
        by_id = {r["run_id"]: r for r in listed}
        assert by_id[started.info.run_id]["trigger_source"] == "webhook"
        assert by_id[started.info.run_id]["status"] == "finished"
        detail = requests.get(f"{srv.url}/api/v1/pipeline-runs/{started.info.run_id}", timeout=30).json()["pipeline_run"]
        assert [(s["step"], s["status"]) for s in detail["steps"]] == [("prepare", "done"), ("train", "done"), ("gate", "done")]
        assert detail["steps"][2]["metrics"]["gate.passed"] == 1.0
        r = requests.post(f"{srv.url}/api/v1/pipeline-runs/{started.info.run_id}/cancel", timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_STATE", r.text
        r = requests.get(f"{srv.url}/api/v1/pipeline-runs/{detail['steps'][0]['run_id']}", timeout=30)
        assert r.status_code == 404 and "not a pipeline run" in r.json()["message"]

        r = requests.post(f"{srv.url}/api/v1/pipelines/nope/runs", json={}, timeout=30)
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        r = requests.post(trigger_url, json={"trigger_key": "", "extra": 1}, timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    finally:
        if traffic is not None:
            traffic.stop.set()
        srv.stop()
