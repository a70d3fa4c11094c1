"""`slipway gate`: the challenger-vs-champion gate, run as CI/CD runs it, against the real
server, with models logged and registered by the real mlflow client::

    $SLIPWAY_BIN gate --model M --candidate V --data holdout.parquet --label y --metric f1
                      --min-delta 0.01 [--max-latency-ms MS] [--promote champion]
                      [--run-id RUN] [--json] [--report PATH] --tracking-uri URL

Model "fraud-like" has three versions with a column signature (f0..f3): v1 sees only f0 (the
champion), v2 sees every feature (a real improvement), v3 was trained on shuffled labels.
Every expected number comes from Python onnxruntime and scikit-learn on the same file.
"""

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import serving_helpers as sh
from conftest import unique
from registry_helpers import Api, assert_no_panic

FEATURES = ["f0", "f1", "f2", "f3"]
REJECTED = 3


def _data(seed, n):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, len(FEATURES))).astype(np.float32)
    noise = r.normal(scale=0.3, size=n)
    y = (X[:, 0] + 0.9 * X[:, 1] - 0.8 * X[:, 2] + noise > 0).astype(np.int64)
    return pd.DataFrame(X, columns=FEATURES), y


def _fit(frame, y, columns):
    from sklearn.linear_model import LogisticRegression

    X = frame[columns].to_numpy(dtype=np.float32)
    m = LogisticRegression().fit(X, y)
    return sh._to_onnx(m, X), frame[columns], m.predict(X)


def _register(client, name, fits):
    """Logs each (onnx, train frame, train output) as the next version of `name`."""
    eid = client.create_experiment(unique("gate-train"))
    mlflow.set_experiment(experiment_id=eid)
    for onx, frame, out in fits:
        with mlflow.start_run():
            sh.log_onnx(onx, name, frame, out)


def _f1_by_onnx(onx, holdout, columns, y):
    """f1 of the model as Python onnxruntime scores the file's rows (float32, as MLflow feeds them)."""
    import onnxruntime
    from sklearn.metrics import f1_score

    s = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    label = s.run(None, {"X": holdout[columns].to_numpy(dtype=np.float32)})[0]
    return f1_score(y, label)


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    train, y_train = _data(1, 800)
    hold, y_hold = _data(2, 400)
    shuffled = np.random.default_rng(3).permutation(y_train)

    name = unique("gate-fraud")
    champion = _fit(train, y_train, ["f0"])
    good = _fit(train, y_train, FEATURES)
    bad = _fit(train, shuffled, FEATURES)
    _register(client, name, [champion, good, bad])
    client.set_registered_model_alias(name, "champion", "1")

    # A second model with one version and no alias: nothing to beat.
    lone = unique("gate-lone")
    _register(client, lone, [good])

    holdout = hold.copy()
    holdout["y"] = y_hold
    parquet, csv = root / "holdout.parquet", root / "holdout.csv"
    holdout.to_parquet(parquet, index=False)
    holdout.to_csv(csv, index=False)
    read_back = pd.read_csv(csv)
    expected = {
        "1": _f1_by_onnx(champion[0], read_back, ["f0"], y_hold),
        "2": _f1_by_onnx(good[0], read_back, FEATURES, y_hold),
        "3": _f1_by_onnx(bad[0], read_back, FEATURES, y_hold),
    }
    # The setup itself: v2 clearly beats v1, v3 clearly does not.
    assert expected["2"] - expected["1"] > 0.03, expected
    assert expected["3"] < expected["1"] - 0.03, expected
    yield SimpleNamespace(
        srv=srv, client=client, api=Api(srv.url), name=name, lone=lone, parquet=parquet, csv=csv,
        expected=expected, root=root,
    )
    srv.stop()


def _gate(g, *args, report=None, run_id=None):
    """Runs `slipway gate` against the module's server, as a CI job would (MLFLOW_RUN_ID set
    when a pipeline run is given)."""
    argv = [
        sh.slipway_bin(), "gate", "--tracking-uri", g.srv.url, "--onnxruntime-lib", sh.onnxruntime_lib(),
        "--report", str(report or (g.root / f"report-{unique('r')}.html")), *args,
    ]
    unset = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_RUN_ID")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if run_id:
        env["MLFLOW_RUN_ID"] = run_id
    p = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)
    assert_no_panic(p)
    return p


def _alias(g, name, alias="champion"):
    return g.client.get_model_version_by_alias(name, alias).version


def _tags(g, name, version):
    return g.client.get_model_version(name, version).tags


def test_shuffled_challenger_is_rejected_and_the_alias_stays(gate):
    g = gate
    report = g.root / "rejected.html"
    p = _gate(
        g, "--model", g.name, "--candidate", "3", "--data", str(g.csv), "--label", "y", "--metric", "f1",
        "--min-delta", "0.01", "--promote", "champion", "--json", report=report,
    )
    assert p.returncode == REJECTED, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    body = json.loads(p.stdout)
    assert body["passed"] is False
    assert body["candidate"]["version"] == "3" and body["champion"]["version"] == "1"
    # The numbers are the ones Python onnxruntime + scikit-learn give on the same file.
    assert abs(body["candidate"]["value"] - g.expected["3"]) < 1e-9, body["candidate"]
    assert abs(body["champion"]["value"] - g.expected["1"]) < 1e-9, body["champion"]
    assert abs(body["candidate"]["metrics"]["f1"] - g.expected["3"]) < 1e-9
    assert body["delta"] < 0
    assert body["holdout"]["rows"] == 400 and body["holdout"]["features"] == FEATURES
    assert _alias(g, g.name) == "1"
    tags = _tags(g, g.name, "3")
    assert tags["slipway.gate"] == "rejected", tags
    assert "f1" in tags["slipway.gate.reasons"] and "worse by" in tags["slipway.gate.reasons"], tags
    page = report.read_text()
    assert "The candidate is rejected" in page and "<script" not in page


def test_good_challenger_passes_moves_the_alias_and_logs_to_the_run(gate):
    g = gate
    # A deployment following the alias: it must swap to the promoted version.
    dep = unique("gate-dep")
    sh.create_deployment(g.srv.url, {"name": dep, "model": g.name, "alias": "champion"})
    sh.wait_deployment_ready(g.srv.url, dep)
    eid = g.client.create_experiment(unique("gate-pipeline"))
    run = g.client.create_run(eid, run_name="pipeline")
    rid = run.info.run_id
    report = g.root / "passed.html"
    p = _gate(
        g, "--model", g.name, "--candidate", "2", "--data", str(g.parquet), "--label", "y", "--metric", "f1",
        "--min-delta", "0.01", "--max-latency-ms", "60000", "--promote", "champion", "--json",
        report=report, run_id=rid,
    )
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    body = json.loads(p.stdout)
    assert body["passed"] is True and body["run_id"] == rid
    assert abs(body["candidate"]["value"] - g.expected["2"]) < 1e-9
    assert abs(body["champion"]["value"] - g.expected["1"]) < 1e-9
    assert abs(body["delta"] - (g.expected["2"] - g.expected["1"])) < 1e-9
    assert [c["name"] for c in body["checks"]] == ["metric", "latency"] and all(c["passed"] for c in body["checks"])
    assert body["candidate"]["latency"]["requests"] == 200

    assert _alias(g, g.name) == "2"
    assert _tags(g, g.name, "2")["slipway.gate"] == "passed"
    assert _tags(g, g.name, "2")["slipway.gate.run_id"] == rid
    # The audit log names the pipeline run as the actor of the move.
    moves = g.api.audit(name=g.name, action="set_alias")
    assert moves[-1]["actor"] == f"pipeline-run:{rid}", moves[-1]
    assert moves[-1]["before"] == {"alias": "champion", "version": "1"}, moves[-1]
    assert moves[-1]["after"] == {"alias": "champion", "version": "2"}, moves[-1]

    # The run holds the numbers and both reports.
    metrics = g.client.get_run(rid).data.metrics
    assert abs(metrics["gate.candidate.f1"] - g.expected["2"]) < 1e-9, metrics
    assert abs(metrics["gate.champion.f1"] - g.expected["1"]) < 1e-9, metrics
    assert metrics["gate.delta"] > 0.01 and metrics["gate.passed"] == 1.0, metrics
    assert "gate.candidate.latency_p95_ms" in metrics
    logged = sorted(f.path for f in g.client.list_artifacts(rid, "gate"))
    assert logged == ["gate/gate-report.html", "gate/gate-report.json"], logged
    local = mlflow.artifacts.download_artifacts(
        run_id=rid, artifact_path="gate/gate-report.json", dst_path=str(g.root / "dl")
    )
    logged_report = json.loads(Path(local).read_text())
    assert logged_report["passed"] is True and logged_report["candidate"]["version"] == "2"
    assert any("moved @champion to version 2" in a for a in logged_report["actions"]), logged_report["actions"]
    assert "The candidate passes" in report.read_text()

    # The deployment following @champion hot-swaps to version 2.
    deadline = time.monotonic() + 60
    version = None
    while time.monotonic() < deadline:
        d = requests.get(f"{g.srv.url}/api/v1/deployments/{dep}", timeout=30).json()["deployment"]
        version = str(d["status"]["primary"]["version"])
        if version == "2":
            break
        time.sleep(0.2)
    assert version == "2", d


def test_without_a_champion_the_candidate_passes_on_its_own(gate):
    g = gate
    p = _gate(
        g, "--model", g.lone, "--candidate", "1", "--data", str(g.csv), "--label", "y", "--metric", "f1",
        "--min-delta", "0.5", "--json",
    )
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    body = json.loads(p.stdout)
    assert body["passed"] is True and body["champion"] is None and body["delta"] is None
    assert "no version holds @champion" in body["checks"][0]["detail"], body["checks"]
    with pytest.raises(mlflow.exceptions.MlflowException):
        _alias(g, g.lone)  # nothing was promoted: --promote was not given


def test_a_latency_bound_can_reject(gate):
    g = gate
    # No single-row request runs in a nanosecond: the bound fails whatever the machine.
    p = _gate(
        g, "--model", g.lone, "--candidate", "1", "--data", str(g.csv), "--label", "y", "--metric", "accuracy",
        "--max-latency-ms", "0.000001", "--latency-sample", "20", "--json",
    )
    assert p.returncode == REJECTED, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    body = json.loads(p.stdout)
    latency = [c for c in body["checks"] if c["name"] == "latency"]
    assert latency and latency[0]["passed"] is False and "over the bound" in latency[0]["detail"], body["checks"]
    assert body["candidate"]["latency"]["requests"] == 20
    assert _tags(g, g.lone, "1")["slipway.gate"] == "rejected"


def test_the_summary_line_without_json(gate):
    g = gate
    p = _gate(g, "--model", g.lone, "--candidate", "1", "--data", str(g.csv), "--label", "y", "--metric", "roc_auc")
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert p.stdout.startswith(f"PASS {g.lone} version 1: no version holds @champion"), p.stdout
    assert "report written to" in p.stdout


@pytest.mark.parametrize(
    "change, naming",
    [
        ({"--label": "nope"}, ["label column 'nope'", "f0, f1, f2, f3, y"]),
        ({"--candidate": "99"}, ["has no version 99"]),
        ({"--model": "never-registered-gate-model"}, ["'never-registered-gate-model' does not exist"]),
        (
            {"--metric": "logloss"},
            ["unsupported metric 'logloss'", "accuracy, precision, recall, f1, roc_auc, mae, rmse, r2"],
        ),
        ({"--data": "/nonexistent/holdout.csv"}, ["cannot read the holdout"]),
    ],
)
def test_bad_input_exits_1_with_a_clear_message(gate, change, naming):
    g = gate
    args = {"--model": g.name, "--candidate": "3", "--data": str(g.csv), "--label": "y", "--metric": "f1"}
    args.update(change)
    flat = [x for kv in args.items() for x in kv]
    p = _gate(g, *flat)
    assert p.returncode == 1, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    for n in naming:
        assert n in p.stderr, p.stderr
    assert p.stdout == ""
