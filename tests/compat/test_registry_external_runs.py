"""Model versions whose ``runs:/`` source names a run another tracking server holds.

MLflow lets the registry live apart from tracking (``registry_uri`` != ``tracking_uri``), so
a well-formed ``runs:/<run>/<path>`` whose run this server does not hold is accepted: the
version keeps its source as given and has no storage location of ours. Lineage says the run
is external; the download URI is the source itself (as MLflow answers), so a client that
tries to fetch it from this server gets a clear "not found", never a 500; serving refuses to
deploy it with a 4xx. A ``runs:/`` source whose run is ours still resolves inside our store
(``test_registry_sources.py``), and traversal is refused whatever the run.

Also here: the exact model-version JSON MLflow 3.17.2 answers (``description`` and
``run_link`` are ``""`` when unset).
"""

import mlflow
import pytest
import requests
from conftest import assert_json_error, slipway_bin, unique
from mlflow.exceptions import MlflowException
from registry_helpers import REG, Api, assert_no_panic, cli_json, run_cli

EXTERNAL_RUN = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def api(tracking):
    return Api(tracking.url)


@pytest.fixture
def external(client, api):
    """A registered model whose version 1 comes from a run this server does not hold."""
    name = unique("ext")
    client.create_registered_model(name)
    source = f"runs:/{EXTERNAL_RUN}/model"
    r = api.post(f"{REG}/model-versions/create", {"name": name, "source": source, "run_id": EXTERNAL_RUN})
    assert r.status_code == 200, r.text
    return name, source, r.json()["model_version"]


def test_external_run_source_is_kept_as_given(api, external):
    name, source, mv = external
    assert mv["version"] == "1"
    assert mv["source"] == source
    assert mv["run_id"] == EXTERNAL_RUN
    assert mv["status"] == "READY"
    got = api.get(f"{REG}/model-versions/get", params={"name": name, "version": "1"}).json()["model_version"]
    assert got == mv
    r = api.get(f"{REG}/model-versions/get-download-uri", params={"name": name, "version": "1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"artifact_uri": source}


def test_external_run_source_without_run_id_takes_the_source_run(client, api):
    name = unique("ext-bare")
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{EXTERNAL_RUN}/a/b/c")
    assert mv.version == "1"
    assert mv.run_id == EXTERNAL_RUN
    assert mv.source == f"runs:/{EXTERNAL_RUN}/a/b/c"
    assert [v.version for v in client.search_model_versions(f"run_id = '{EXTERNAL_RUN}' and name = '{name}'")] == ["1"]


def test_lineage_marks_the_run_external(api, external):
    name, _, _ = external
    lin = api.lineage(name, 1)
    assert lin["run"] == {"run_id": EXTERNAL_RUN, "external": True}
    assert lin["run_id"] == EXTERNAL_RUN
    assert lin["params"] == [] and lin["metrics"] == [] and lin["datasets"] == []
    assert lin["experiment_id"] is None


def test_lineage_of_our_own_run_is_not_external(client, api):
    eid = client.create_experiment(unique("ext-own"))
    rid = client.create_run(eid).info.run_id
    client.log_param(rid, "alpha", "1")
    name = unique("ext-own-model")
    client.create_registered_model(name)
    r = api.post(f"{REG}/model-versions/create", {"name": name, "source": f"runs:/{rid}", "run_id": rid})
    assert r.status_code == 200, r.text
    lin = api.lineage(name, 1)
    assert lin["run"] == {"run_id": rid, "external": False}
    assert lin["params"] == [{"key": "alpha", "value": "1"}]


def test_cli_lineage_says_external(tracking, external):
    name, _, _ = external
    out = cli_json(slipway_bin(), "models", "lineage", name, "1", "--json", "--tracking-uri", tracking.url)
    assert out["run"] == {"run_id": EXTERNAL_RUN, "external": True}
    p = run_cli(slipway_bin(), "models", "lineage", name, "1", "--tracking-uri", tracking.url)
    assert p.returncode == 0, p.stderr
    assert_no_panic(p)
    assert f"{EXTERNAL_RUN} (external: not held by this server)" in p.stdout


def test_downloading_an_external_version_is_a_clear_not_found(tracking, external, tmp_path):
    name, _, _ = external
    with pytest.raises(MlflowException) as e:
        mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path))
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST", str(e.value)
    assert EXTERNAL_RUN in str(e.value)


def test_copying_an_external_version_stays_external(client, api, external):
    name, source, _ = external
    copy = client.copy_model_version(f"models:/{name}/1", name)
    assert copy.version == "2"
    assert copy.run_id == EXTERNAL_RUN
    assert api.lineage(name, 2)["run"] == {"run_id": EXTERNAL_RUN, "external": True}


@pytest.mark.parametrize(
    "source",
    [
        f"runs:/{EXTERNAL_RUN}/../../etc",
        f"runs:/{EXTERNAL_RUN}/%2e%2e/x",
        f"runs:/{EXTERNAL_RUN}/%252e%252e/x",
        f"runs:/{EXTERNAL_RUN}/a\\..\\b",
        "runs:/-bad-id/model",
        "runs:/",
        f"runs://{EXTERNAL_RUN}/model",
    ],
)
def test_malformed_external_sources_are_refused(client, api, source):
    name = unique("ext-bad")
    client.create_registered_model(name)
    r = api.post(f"{REG}/model-versions/create", {"name": name, "source": source})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.search_model_versions(f"name = '{name}'") == []


def test_model_version_json_matches_mlflow(api, client):
    """create, get, search and latest_versions answer description and run_link as ``""``."""
    name = unique("shape")
    client.create_registered_model(name)
    r = api.post(f"{REG}/model-versions/create", {"name": name, "source": f"runs:/{EXTERNAL_RUN}/m"})
    assert r.status_code == 200, r.text
    created = r.json()["model_version"]
    expected_keys = {
        "name", "version", "creation_timestamp", "last_updated_timestamp", "current_stage",
        "description", "source", "run_id", "status", "run_link",
    }  # fmt: skip
    assert set(created) == expected_keys, created
    assert created["description"] == "" and created["run_link"] == ""
    got = api.get(f"{REG}/model-versions/get", params={"name": name, "version": "1"}).json()["model_version"]
    found = api.get(f"{REG}/model-versions/search", params={"filter": f"name = '{name}'"}).json()["model_versions"]
    latest = api.post(f"{REG}/registered-models/get-latest-versions", {"name": name}).json()["model_versions"]
    rm = api.get(f"{REG}/registered-models/get", params={"name": name}).json()["registered_model"]
    for mv in (got, found[0], latest[0], rm["latest_versions"][0]):
        assert mv == created
    assert "description" not in rm  # MLflow leaves an unset model description out
    with_text = api.post(
        f"{REG}/model-versions/create",
        {"name": name, "source": f"runs:/{EXTERNAL_RUN}/m", "description": "d", "run_link": "http://x/run"},
    ).json()["model_version"]
    assert with_text["description"] == "d" and with_text["run_link"] == "http://x/run"


def test_serving_refuses_an_external_version(tmp_path_factory):
    import serving_helpers as sh

    root = tmp_path_factory.mktemp("ext-serving")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    try:
        api = Api(srv.url)
        name = unique("ext-serve")
        assert api.post(f"{REG}/registered-models/create", {"name": name}).status_code == 200
        r = api.post(f"{REG}/model-versions/create", {"name": name, "source": f"runs:/{EXTERNAL_RUN}/model"})
        assert r.status_code == 200, r.text
        r = requests.post(
            srv.url + sh.DEPLOYMENTS, json={"name": unique("ext-dep"), "model": name, "version": "1"}, timeout=60
        )
        body = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
        assert "artifact store" in body["message"], body
        assert requests.get(srv.url + "/health", timeout=10).status_code == 200
        assert "panicked" not in srv.stderr_text()
    finally:
        srv.stop()
