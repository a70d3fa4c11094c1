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

import pytest
import requests
from conftest import slipway_bin, unique
from registry_helpers import Api, assert_no_panic
from serving_helpers import DEPLOYMENTS, wait_deployment_ready

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "closed-loop"


def set_param(proj: Path, old: str, new: str):
    text = (proj / "params.yaml").read_text()
    assert old in text, old
    (proj / "params.yaml").write_text(text.replace(old, new))


def run(server, proj, expect_rc=0):
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")).resolve() / "bin")
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url, PATH=venv_bin + os.pathsep + os.environ["PATH"])
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
