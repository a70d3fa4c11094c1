"""Proxied artifact compatibility (mlflow-artifacts:/ through the server)."""

import filecmp
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus


def _files_under(root: Path):
    return sorted(
        str(p.relative_to(root)).replace(os.sep, "/") for p in root.rglob("*") if p.is_file()
    )


@pytest.fixture
def artifact_tree(tmp_path):
    """Nested folders with text, random binary and empty files."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "other").mkdir()
    (src / "top.txt").write_text("top level\n")
    (src / "sub" / "blob.bin").write_bytes(os.urandom(1024 * 1024 + 7))
    (src / "sub" / "deeper" / "tiny.bin").write_bytes(os.urandom(3))
    (src / "sub" / "deeper" / "all_bytes.bin").write_bytes(bytes(range(256)) * 4)
    (src / "other" / "empty.dat").write_bytes(b"")
    (src / "other" / "unicode-é.txt").write_text("héllo wörld ✓\n", encoding="utf-8")
    (src / "other" / "with space.txt").write_text("spaces in name\n")
    return src


def test_log_artifact_single_file_and_list_root(client, experiment_id, tmp_path):
    f = tmp_path / "hello.txt"
    f.write_text("hello artifacts\n")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(4096))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(f))
        mlflow.log_artifact(str(payload), artifact_path="bins")
    rid = run.info.run_id

    root = {fi.path: fi for fi in client.list_artifacts(rid)}
    assert set(root) == {"hello.txt", "bins"}
    assert root["hello.txt"].is_dir is False
    assert root["hello.txt"].file_size == len("hello artifacts\n")
    assert root["bins"].is_dir is True
    assert root["bins"].file_size in (None, 0)

    nested = client.list_artifacts(rid, "bins")
    assert [(fi.path, fi.is_dir, fi.file_size) for fi in nested] == [("bins/payload.bin", False, 4096)]

    out = tmp_path / "dl"
    out.mkdir()
    local = client.download_artifacts(rid, "bins/payload.bin", str(out))
    assert Path(local).read_bytes() == payload.read_bytes()
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="hello.txt", dst_path=str(out))
    assert Path(local).read_text() == "hello artifacts\n"


def test_log_artifacts_nested_binary_round_trip(client, experiment_id, artifact_tree, tmp_path):
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(artifact_tree), artifact_path="data")
        mlflow.log_artifacts(str(artifact_tree))  # also at the root
    rid = run.info.run_id

    root = {fi.path: fi for fi in client.list_artifacts(rid)}
    assert set(root) == {"data", "top.txt", "sub", "other"}
    assert root["data"].is_dir and root["sub"].is_dir and root["other"].is_dir
    assert not root["top.txt"].is_dir

    data = {fi.path: fi for fi in client.list_artifacts(rid, "data")}
    assert set(data) == {"data/top.txt", "data/sub", "data/other"}
    sub = {fi.path: fi for fi in client.list_artifacts(rid, "data/sub")}
    assert set(sub) == {"data/sub/blob.bin", "data/sub/deeper"}
    assert sub["data/sub/blob.bin"].file_size == 1024 * 1024 + 7
    assert sub["data/sub/blob.bin"].is_dir is False
    assert sub["data/sub/deeper"].is_dir is True
    deeper = {fi.path: fi.file_size for fi in client.list_artifacts(rid, "data/sub/deeper")}
    assert deeper == {"data/sub/deeper/tiny.bin": 3, "data/sub/deeper/all_bytes.bin": 1024}
    other = {fi.path: fi for fi in client.list_artifacts(rid, "data/other")}
    assert set(other) == {
        "data/other/empty.dat",
        "data/other/unicode-é.txt",
        "data/other/with space.txt",
    }
    assert other["data/other/empty.dat"].file_size in (0, None)

    # listing a path that does not exist is an empty list, not an error
    assert client.list_artifacts(rid, "no/such/dir") == []

    # download a whole folder and compare byte for byte
    out = tmp_path / "out"
    out.mkdir()
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path=str(out))
    local = Path(local)
    assert _files_under(local) == _files_under(artifact_tree)
    for rel in _files_under(artifact_tree):
        assert (local / rel).read_bytes() == (artifact_tree / rel).read_bytes(), rel

    # download the whole run root
    out2 = tmp_path / "out2"
    out2.mkdir()
    local2 = Path(client.download_artifacts(rid, "", str(out2)))
    expected = sorted(_files_under(artifact_tree) + ["data/" + p for p in _files_under(artifact_tree)])
    assert _files_under(local2) == expected
    cmp = filecmp.dircmp(str(local2 / "sub"), str(artifact_tree / "sub"))
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only


def test_log_text_and_dict(client, experiment_id):
    cfg = {"lr": 0.01, "layers": [64, 32], "name": "net", "nested": {"ok": True}}
    with mlflow.start_run() as run:
        mlflow.log_text("line one\nline two ✓\n", "notes/readme.txt")
        mlflow.log_dict(cfg, "config/params.json")
        mlflow.log_dict(cfg, "config/params.yaml")
    rid = run.info.run_id
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.txt") == "line one\nline two ✓\n"
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/config/params.json") == cfg
    yaml_text = mlflow.artifacts.load_text(f"runs:/{rid}/config/params.yaml")
    assert "lr: 0.01" in yaml_text
    listed = {fi.path for fi in client.list_artifacts(rid, "config")}
    assert listed == {"config/params.json", "config/params.yaml"}


def test_sklearn_log_model_and_load(client, experiment_id):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    expected = model.predict(X)

    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn"],  # skip requirement inference (slow)
        )
    rid = run.info.run_id
    assert info.model_id
    assert info.model_uri == f"models:/{info.model_id}"
    assert info.run_id == rid

    by_run = mlflow.pyfunc.load_model(f"runs:/{rid}/model")
    np.testing.assert_array_equal(by_run.predict(X), expected)
    by_uri = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(by_uri.predict(X), expected)
    sk = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(sk.predict(X), expected)

    lm = client.get_logged_model(info.model_id)
    assert lm.model_id == info.model_id
    assert lm.name == "model"
    assert lm.experiment_id == experiment_id
    assert lm.source_run_id == rid
    assert lm.status == LoggedModelStatus.READY
    # Under the experiment's location: mlflow-artifacts:/<id> when proxied, s3://... when direct.
    exp_location = client.get_experiment(experiment_id).artifact_location
    assert lm.artifact_location == f"{exp_location}/models/{info.model_id}/artifacts"

    found = client.search_logged_models([experiment_id])
    assert [m.model_id for m in found] == [info.model_id]
    found = client.search_logged_models([experiment_id], filter_string="name = 'model'")
    assert [m.model_id for m in found] == [info.model_id]
    found = client.search_logged_models([experiment_id], filter_string="name = 'nope'")
    assert list(found) == []

    # the model's files are reachable through the proxied artifact API
    files = {
        os.path.basename(p)
        for p in os.listdir(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri))
    }
    assert "MLmodel" in files


def test_logged_model_lists_the_metrics_logged_for_it(client, experiment_id):
    """log_model links the run's metrics to the new model, and a metric can name a model: both
    show as the model's metrics, each with its run, as MLflow 3 keeps them."""
    from sklearn.linear_model import LogisticRegression

    X = np.arange(12, dtype=float).reshape(6, 2)
    model = LogisticRegression().fit(X, [0, 1, 0, 1, 0, 1])
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.75)
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        mlflow.log_metric("f1", 0.5, step=3, model_id=info.model_id)
    found = {(m.key, m.value, m.step, m.run_id) for m in client.get_logged_model(info.model_id).metrics}
    assert found == {("acc", 0.75, 0, run.info.run_id), ("f1", 0.5, 3, run.info.run_id)}, found
    (listed,) = client.search_logged_models([experiment_id])
    assert {m.key for m in listed.metrics} == {"acc", "f1"}
    # The run's own history has them too, once.
    assert {k: v for k, v in client.get_run(run.info.run_id).data.metrics.items()} == {"acc": 0.75, "f1": 0.5}


def test_artifact_edge_cases(client, experiment_id, tmp_path):
    rid = client.create_run(experiment_id).info.run_id
    assert client.list_artifacts(rid) == []
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Exception):
        client.download_artifacts(rid, "does/not/exist.txt", str(out))
    # overwriting an artifact replaces its content
    f = tmp_path / "same.txt"
    f.write_text("first version, longer\n")
    client.log_artifact(rid, str(f))
    f.write_text("second\n")
    client.log_artifact(rid, str(f))
    assert [(fi.path, fi.file_size) for fi in client.list_artifacts(rid)] == [("same.txt", 7)]
    local = client.download_artifacts(rid, "same.txt", str(out))
    assert Path(local).read_text() == "second\n"
