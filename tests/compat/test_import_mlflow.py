"""`slipway import mlflow` against a real `mlflow server` 3.17.2.

The pinned client populates an MLflow server (SQLite, and PostgreSQL on the server
scripts/test.sh starts): experiments with tags, a deleted experiment, runs with params, tags
and metric histories holding NaN and ±inf, a deleted run, datasets, artifacts, ONNX models
registered in three versions (one deleted) with aliases and tags, and a trace. The server is
stopped, its database and artifact folder are imported, and Slipway is started on the result:
everything the client reads back must match what it read from MLflow, the imported champion
must load with `mlflow.pyfunc` and serve, and a second import must find everything unchanged.
"""

import json
import math
import os
import subprocess
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import serving_helpers as sh
from conftest import REPO_ROOT, ServerProcess, slipway_bin
from mlflow.entities import ViewType
from registry_helpers import run_cli

MLFLOW = REPO_ROOT / ".venv" / "bin" / "mlflow"
MODEL = "import-clf"


class MlflowServer(ServerProcess):
    """`mlflow server` on conftest's launcher (its own process group: it spawns workers and huey
    consumers)."""

    name = "mlflow-server"
    startup_timeout = 120
    stop_timeout = 20

    def __init__(self, root: Path, store_uri: str, artifacts=None):
        super().__init__(root / "mlflow-logs", cwd=root)
        self.store_uri = store_uri
        self.artifacts = artifacts or root / "mlartifacts"

    def command(self):
        return [MLFLOW, "server", "--host", "127.0.0.1", "--port", self.port,
                "--backend-store-uri", self.store_uri, "--artifacts-destination", self.artifacts]


def populate(url):
    """Everything a team's MLflow holds, written with the client; returns what to check."""
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    exp = client.create_experiment("import-main", tags={"team": "fraud", "tier": "1"})
    gone = client.create_experiment("import-gone")
    client.delete_experiment(gone)
    mlflow.set_experiment(experiment_id=exp)

    models = sh.versioned_models(n_versions=3)
    runs = []
    for i, (onx, X, y) in enumerate(models, start=1):
        with mlflow.start_run(run_name=f"train-{i}") as run:
            mlflow.log_params({"alpha": str(0.1 * i), "layers": "3"})
            mlflow.set_tags({"stage": "candidate", "attempt": str(i)})
            for step in range(40):
                mlflow.log_metric("loss", 1.0 / (step + i), step=step, timestamp=1_700_000_000_000 + step)
            for step, value in enumerate([float("nan"), float("inf"), float("-inf"), 0.5]):
                mlflow.log_metric("odd", value, step=step)
            df = pd.DataFrame(X[:20], columns=[f"f{j}" for j in range(X.shape[1])])
            mlflow.log_input(mlflow.data.from_pandas(df, source="data/train.csv", name="train"), context="training")
            mlflow.log_text(f"notes of run {i}\n", "notes/readme.txt")
            mlflow.log_dict({"seed": i, "features": X.shape[1]}, "config/params.json")
            info = sh.log_onnx(onx, MODEL, X, y)
            assert str(info.registered_model_version) == str(i)
            runs.append(run.info.run_id)
    with mlflow.start_run(run_name="abandoned") as run:
        mlflow.log_metric("loss", 3.0)
    client.delete_run(run.info.run_id)

    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "challenger", "1")
    client.set_registered_model_tag(MODEL, "owner", "risk-team")
    client.update_registered_model(MODEL, description="fraud classifier")
    client.set_model_version_tag(MODEL, "2", "validated", "yes")
    client.update_model_version(MODEL, "2", description="the one in production")
    client.delete_model_version(MODEL, "3")

    @mlflow.trace
    def traced(x):
        return x + 1

    traced(1)
    if hasattr(mlflow, "flush_trace_async_logging"):
        mlflow.flush_trace_async_logging()
    return {"experiment": exp, "runs": runs, "X": models[1][1][:5]}


def snapshot(url, experiment_id):
    """What the client reads back, in a form that compares (NaN as a string)."""
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)

    def num(v):
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    experiments = [
        (e.experiment_id, e.name, e.lifecycle_stage, e.artifact_location, e.creation_time, sorted(e.tags.items()))
        for e in client.search_experiments(view_type=ViewType.ALL, order_by=["experiment_id"])
    ]
    runs = []
    for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL):
        history = {
            key: sorted((m.step, m.timestamp, num(m.value)) for m in client.get_metric_history(r.info.run_id, key))
            for key in r.data.metrics
        }
        runs.append({
            "id": r.info.run_id,
            "name": r.info.run_name,
            "status": r.info.status,
            "times": (r.info.start_time, r.info.end_time),
            "lifecycle": r.info.lifecycle_stage,
            "artifact_uri": r.info.artifact_uri,
            "params": r.data.params,
            "tags": r.data.tags,
            "latest": {k: num(v) for k, v in r.data.metrics.items()},
            "history": history,
            "datasets": sorted(
                (d.dataset.name, d.dataset.digest, d.dataset.source_type, sorted((t.key, t.value) for t in d.tags))
                for d in r.inputs.dataset_inputs
            ),
            "outputs": sorted(o.model_id for o in (r.outputs.model_outputs if r.outputs else [])),
        })
    logged = sorted(
        (m.model_id, m.name, str(m.status), m.source_run_id, m.creation_timestamp, sorted(m.params.items()),
         sorted((k, v) for k, v in m.tags.items()),
         sorted((mm.key, num(mm.value), mm.step, mm.timestamp, mm.run_id) for mm in m.metrics))
        for m in client.search_logged_models(experiment_ids=[experiment_id])
    )
    rm = client.get_registered_model(MODEL)
    versions = sorted(
        (v.version, v.source, v.run_id, v.status, v.current_stage, v.description, sorted(v.tags.items()),
         v.creation_timestamp, v.model_id)
        for v in client.search_model_versions(f"name = '{MODEL}'")
    )
    champion = client.get_model_version_by_alias(MODEL, "champion")
    return {
        "experiments": experiments,
        "runs": runs,
        "logged_models": logged,
        "registered": (rm.name, rm.description, sorted(rm.tags.items()), sorted(rm.aliases.items()), rm.creation_timestamp),
        "versions": versions,
        "champion": (champion.version, champion.source, champion.run_id),
    }


def artifact_files(url, run_id, tmp_path):
    mlflow.set_tracking_uri(url)
    out = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path)))
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def in_target_root(snap, target):
    """The snapshot as Slipway shows it: with direct S3 artifacts (SLIPWAY_TEST_ARTIFACTS=s3-direct)
    locations name the bucket instead of the proxy scheme, under the same paths."""
    if "direct" not in target.artifact_args:
        return snap
    root = target.artifact_args[target.artifact_args.index("--artifact-root") + 1]

    def moved(uri):
        return root + uri[len("mlflow-artifacts:"):] if uri.startswith("mlflow-artifacts:") else uri

    out = dict(snap)
    out["experiments"] = [e[:3] + (moved(e[3]),) + e[4:] for e in snap["experiments"]]
    out["runs"] = [dict(r, artifact_uri=moved(r["artifact_uri"])) for r in snap["runs"]]
    return out


def as_array(prediction):
    """An ONNX pyfunc predicts a dict of named outputs; these models have one."""
    if isinstance(prediction, dict):
        (prediction,) = prediction.values()
    return np.asarray(prediction, dtype=np.float64).ravel()


def run_import(target, source_uri, artifacts_dir):
    args = ["import", "mlflow", "--from", source_uri, "--artifacts-from", str(artifacts_dir), "--json",
            "--data-dir", str(target.data_dir)]
    args += (["--backend-store-uri", target.store_uri] if target.store_uri else []) + target.artifact_args
    p = run_cli(slipway_bin(), *args, timeout=300)
    assert p.returncode == 0, f"import failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


def mlflow_store(kind, root):
    if kind == "sqlite":
        return f"sqlite:///{root / 'mlflow.db'}"
    admin = os.environ.get("SLIPWAY_TEST_PG_URL")
    assert admin, "SLIPWAY_TEST_PG_URL is not set: scripts/test.sh starts PostgreSQL for this test"
    name = "mlflow_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", admin, "-qXc", f"CREATE DATABASE {name}"], check=True)
    # The venv has psycopg 3, not SQLAlchemy's default psycopg2: name the driver, as users do.
    return (admin.rsplit("/", 1)[0] + "/" + name).replace("postgresql://", "postgresql+psycopg://", 1)


def mlflow_artifacts(source, root):
    """MLflow's --artifacts-destination: a folder, or, for the `+s3` variant, a fresh prefix of
    the bucket scripts/s3.sh made (MLflow writes it with boto3, Slipway reads it with
    object_store)."""
    if not source.endswith("+s3"):
        return root / "mlartifacts"
    bucket = os.environ.get("SLIPWAY_TEST_S3_BUCKET")
    assert bucket, "SLIPWAY_TEST_S3_BUCKET is not set: scripts/test.sh starts an S3 server for this test"
    return f"s3://{bucket}/mlflow-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("source", ["sqlite", "postgresql", "sqlite+s3"])
def test_import_copies_everything_the_client_reads(source, tmp_path):
    kind = source.split("+")[0]
    mlflow_srv = MlflowServer(tmp_path, mlflow_store(kind, tmp_path), mlflow_artifacts(source, tmp_path))
    mlflow_srv.start()
    try:
        made = populate(mlflow_srv.url)
        before = snapshot(mlflow_srv.url, made["experiment"])
        files_before = artifact_files(mlflow_srv.url, made["runs"][1], tmp_path / "from-mlflow")
        pred_before = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(made["X"])
    finally:
        mlflow_srv.stop()
    # What is compared is not empty: every kind of object is there to lose.
    assert len(before["runs"]) == 4 and len(before["versions"]) == 2, before["versions"]
    assert len(before["experiments"]) == 3 and len(before["logged_models"]) == 3
    assert all(model[-1] for model in before["logged_models"]), "logged models carry their metrics"
    odd = before["runs"][1]["history"]["odd"]
    assert [v for _, _, v in odd] == ["nan", 1.7976931348623157e308, -1.7976931348623157e308, 0.5], odd
    assert all(r["datasets"] for r in before["runs"] if r["lifecycle"] == "active")
    assert len(files_before) >= 2 and "notes/readme.txt" in files_before, files_before

    target = sh.ServingServer(tmp_path / "slipway", tmp_path / "slipway-logs")
    first = run_import(target, mlflow_srv.store_uri, mlflow_srv.artifacts)
    assert first["runs"] == {"created": 4, "updated": 0, "unchanged": 0, "skipped": 0}, first
    # The two experiments and MLflow's Default, merged into ours.
    assert first["experiments"]["created"] == 2 and first["experiments"]["skipped"] == 0, first
    assert first["logged_models"]["created"] == 3 and first["registered_models"]["created"] == 1, first
    assert first["model_versions"] == 3 and first["metric_points"] == 3 * (40 + 4) + 1, first
    assert first["artifact_files_copied"] > 10 and first["artifact_bytes_copied"] > 0, first
    # Traces have no counterpart here: reported, not silently dropped.
    assert any("trace" in s for s in first["skipped"]), first["skipped"]

    target.start()
    try:
        after = snapshot(target.url, made["experiment"])
        expected = in_target_root(before, target)
        for key in expected:
            assert after[key] == expected[key], f"{key} differs after import"
        assert artifact_files(target.url, made["runs"][1], tmp_path / "from-slipway") == files_before
        pred_after = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(made["X"])
        np.testing.assert_allclose(as_array(pred_after), as_array(pred_before), rtol=1e-6)
        # Serving resolves the imported version's storage location to the copied files.
        sh.create_deployment(target.url, {"name": "imported", "model": MODEL, "alias": "champion"})
        sh.wait_deployment_ready(target.url, "imported")
        body = {"dataframe_split": {"columns": [f"f{j}" for j in range(made["X"].shape[1])],
                                    "data": made["X"].tolist()}}
        r = requests.post(f"{target.url}/serving/imported/invocations", json=body, timeout=30)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(as_array(r.json()["predictions"]), as_array(pred_before), rtol=1e-5)
        # New objects get ids after the imported ones, and version numbers are not reused.
        client = mlflow.MlflowClient(target.url)
        assert int(client.create_experiment("after-import")) > int(made["experiment"])
        v = client.create_model_version(MODEL, source=f"runs:/{made['runs'][0]}/model", run_id=made["runs"][0])
        assert v.version == "4"
    finally:
        target.stop()

    second = run_import(target, mlflow_srv.store_uri, mlflow_srv.artifacts)
    for kind in ("experiments", "runs", "logged_models"):
        assert second[kind]["created"] == 0 and second[kind]["updated"] == 0, (kind, second)
    assert second["runs"]["unchanged"] == 4, second
    assert second["artifact_files_copied"] == 0, second
    assert second["artifact_files_present"] == first["artifact_files_copied"] + first["artifact_files_present"]


def test_import_refuses_what_is_not_an_mlflow_database(tmp_path):
    target = sh.ServingServer(tmp_path / "slipway", tmp_path / "slipway-logs")
    not_mlflow = tmp_path / "other.db"
    subprocess.run(["python3", "-c", f"import sqlite3; sqlite3.connect('{not_mlflow}').execute('CREATE TABLE t (x)')"],
                   check=True)
    for source, message in [
        (f"sqlite:///{not_mlflow}", "no MLflow tracking tables"),
        ("mysql://user@host/db", "unsupported MLflow backend"),
        (f"sqlite:///{tmp_path / 'missing.db'}", "opening the MLflow database"),
    ]:
        p = run_cli(slipway_bin(), "import", "mlflow", "--from", source, "--data-dir", str(target.data_dir))
        assert p.returncode != 0 and message in p.stderr, (source, p.stderr)
        assert "panicked" not in p.stderr
    p = run_cli(slipway_bin(), "import", "mlflow", "--from", f"sqlite:///{not_mlflow}",
                "--artifacts-from", str(tmp_path / "nowhere"), "--data-dir", str(target.data_dir))
    assert p.returncode != 0 and "no such folder" in p.stderr, p.stderr
