"""model-versions/create source validation.

A model version's source must resolve inside Slipway's own artifact store; anything else
(local paths, other schemes, traversal in any encoding, unknown logged models) is
400 INVALID_PARAMETER_VALUE and creates nothing: no version, no audit record, no consumed
version number. A well-formed ``runs:/`` source whose run another tracking server holds is
accepted (see ``test_registry_external_runs.py``) unless its request names another run or a
logged model, which is why the unknown-run form stays here only with those ids.

Requests are raw ``requests`` POSTs (the client pre-validates some shapes). Every rejected
form is sent three ways: bare, with the ``run_id`` of a real run, and with the ``model_id``
of a real logged model, so that a valid id next to a bad source cannot smuggle it in.
"""

from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from conftest import assert_json_error, unique
from mlflow.exceptions import MlflowException
from registry_helpers import REG, Api

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"

REJECTED = {
    "file-etc-passwd": "file:///etc/passwd",
    "file-tmp": "file:///tmp/x",
    "absolute-path": "/etc/passwd",
    "relative-dotdot": "../../x",
    "artifacts-dotdot": "mlflow-artifacts:/../../etc",
    "artifacts-encoded-dotdot": "mlflow-artifacts:/%2e%2e/%2e%2e/etc",
    "artifacts-double-encoded": "mlflow-artifacts:/%252e%252e/x",
    "artifacts-climb-out-of-run": "mlflow-artifacts:/{exp}/{run}/artifacts/../../../../etc",
    "runs-dotdot": "runs:/{run}/../../x",
    "runs-encoded-dotdot": "runs:/{run}/%2e%2e/%2e%2e/x",
    "runs-unknown-run-dotdot": f"runs:/{UNKNOWN_RUN}/../x",
    "runs-unknown-run-encoded-dotdot": f"runs:/{UNKNOWN_RUN}/%2e%2e/x",
    "runs-malformed-run-id": "runs:/../model",
    "runs-with-host": f"runs://{UNKNOWN_RUN}/model",
    "http": "http://evil.example/model",
    "s3": "s3://bucket/x",
    "models-dotdot": "models:/../x",
    "models-unknown-logged-model": "models:/m-doesnotexist",
    "empty": "",
}


@pytest.fixture(scope="module")
def src(server, tmp_path_factory):
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("sources"))
    run = client.create_run(eid)
    rid = run.info.run_id
    d = tmp_path_factory.mktemp("src")
    (d / "hello.txt").write_text("hello from the run\n")
    client.log_artifact(rid, str(d / "hello.txt"), artifact_path="model")
    lm = client.create_logged_model(eid, name="lm", source_run_id=rid)
    ld = d / "lm"
    ld.mkdir()
    (ld / "weights.txt").write_text("logged model weights\n")
    client.log_model_artifacts(lm.model_id, str(ld))
    client.finalize_logged_model(lm.model_id, "READY")
    client.set_terminated(rid)
    return SimpleNamespace(
        client=client,
        eid=eid,
        rid=rid,
        artifact_uri=client.get_run(rid).info.artifact_uri,
        mid=lm.model_id,
    )


@pytest.fixture
def api(tracking):
    return Api(tracking.url)


def _assert_nothing_created(client, api, name):
    assert client.search_model_versions(f"name = '{name}'") == []
    assert client.get_registered_model(name).latest_versions == []
    r = api.get("/api/v1/audit", params={"name": name, "action": "create_model_version"})
    assert r.status_code == 200, r.text
    assert r.json().get("records", []) == []


@pytest.mark.parametrize("ids", ["bare", "with-run-id", "with-model-id"])
@pytest.mark.parametrize("form", sorted(REJECTED))
def test_rejected_source(client, api, src, form, ids):
    name = unique("src-rej")
    client.create_registered_model(name)
    source = REJECTED[form].format(exp=src.eid, run=src.rid)
    body = {"name": name, "source": source}
    if ids == "with-run-id":
        body["run_id"] = src.rid
    elif ids == "with-model-id":
        body["model_id"] = src.mid
    r = api.post(f"{REG}/model-versions/create", body)
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    _assert_nothing_created(client, api, name)

    # the rejected request consumed no version number
    ok = api.post(
        f"{REG}/model-versions/create",
        {"name": name, "source": f"models:/{src.mid}", "model_id": src.mid},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["model_version"]["version"] == "1"


@pytest.mark.parametrize("ids", ["with-run-id", "with-model-id"])
def test_unknown_run_refused_when_the_request_names_something_else(client, api, src, ids):
    name = unique("src-rej-unknown")
    client.create_registered_model(name)
    body = {"name": name, "source": f"runs:/{UNKNOWN_RUN}/model"}
    if ids == "with-run-id":
        body["run_id"] = src.rid
    else:
        body["model_id"] = src.mid
    r = api.post(f"{REG}/model-versions/create", body)
    err = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    which = "run_id" if ids == "with-run-id" else "model_id"
    assert f"The {which} request parameter must identify the resource that contains the source" in err["message"]
    _assert_nothing_created(client, api, name)


def test_rejected_through_the_client(client, api, src):
    name = unique("src-client")
    client.create_registered_model(name)
    for bad in ("file:///etc/passwd", "s3://bucket/x", f"runs:/{src.rid}/../../x"):
        with pytest.raises(MlflowException) as e:
            client.create_model_version(name, bad, run_id=src.rid)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE", (bad, str(e.value))
    with pytest.raises(MlflowException) as e:
        mlflow.register_model("http://evil.example/model", name)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    _assert_nothing_created(client, api, name)


def _download_version(name, version, dst):
    return Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dst)))


def test_accepted_sources_resolve(client, api, src, tmp_path):
    name = unique("src-ok")
    client.create_registered_model(name)
    accepted = [
        ({"source": f"models:/{src.mid}", "model_id": src.mid}, "weights.txt", "logged model weights\n"),
        ({"source": f"runs:/{src.rid}/model", "run_id": src.rid}, "hello.txt", "hello from the run\n"),
        ({"source": f"{src.artifact_uri}/model", "run_id": src.rid}, "hello.txt", "hello from the run\n"),
    ]
    assert accepted[2][0]["source"].startswith(f"mlflow-artifacts:/{src.eid}/{src.rid}/artifacts/")
    for i, (body, fname, content) in enumerate(accepted, start=1):
        r = api.post(f"{REG}/model-versions/create", {"name": name, **body})
        assert r.status_code == 200, (body, r.text)
        mv = r.json()["model_version"]
        assert mv["version"] == str(i)
        assert mv["source"] == body["source"]
        assert mv["status"] == "READY"
        assert mv.get("run_id") == src.rid  # given, or taken from the logged model's source run
        local = _download_version(name, i, tmp_path / f"v{i}")
        assert (local / fname).read_text() == content, (body, sorted(p.name for p in local.iterdir()))

    # the same shapes through the client
    mv = client.create_model_version(name, f"runs:/{src.rid}/model", run_id=src.rid)
    assert mv.version == "4"
    mv = client.create_model_version(name, f"models:/{src.mid}", model_id=src.mid)
    assert mv.version == "5"
    assert (_download_version(name, 5, tmp_path / "v5") / "weights.txt").is_file()
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1", "2", "3", "4", "5"]
