"""Model registry compatibility through the unmodified MLflow client (and raw HTTP for wire shapes).

Two sklearn models are logged once per module (a fitted LogisticRegression and a constant
classifier, so that which version got loaded is visible in the predictions); every other
version is registered from those logged models with ``create_model_version`` the way the
client does it (``source=models:/<model_id>``, ``model_id``).
"""

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import yaml
from conftest import assert_json_error, unique
from mlflow.exceptions import MlflowException
from registry_helpers import REG, Api, error_code, fit_models, log_sklearn, new_version


@pytest.fixture(scope="module")
def reg(server):
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("registry"))
    mlflow.set_experiment(experiment_id=eid)
    X, lr, const = fit_models()
    name = unique("reg-model")
    with mlflow.start_run(run_name="reg-v1") as r1:
        info1 = log_sklearn(lr, registered_model_name=name)
    with mlflow.start_run(run_name="reg-v2") as r2:
        info2 = log_sklearn(const)
    # runs:/<run>/model has no MLmodel under the run's own artifacts in MLflow 3: the client
    # finds the logged model through logged-models/search and registers models:/<model_id>.
    mv2 = mlflow.register_model(f"runs:/{r2.info.run_id}/model", name)
    return SimpleNamespace(
        eid=eid,
        name=name,
        X=X,
        pred1=lr.predict(X),
        pred2=const.predict(X),
        info1=info1,
        info2=info2,
        mid1=info1.model_id,
        mid2=info2.model_id,
        run1=r1.info.run_id,
        run2=r2.info.run_id,
        mv2=mv2,
    )


@pytest.fixture
def api(tracking):
    return Api(tracking.url)


def _fresh_model(client, reg, mids=("mid1", "mid2")):
    """A new registered model with one version per entry of `mids`."""
    name = unique("rm")
    client.create_registered_model(name)
    for m in mids:
        new_version(client, name, getattr(reg, m))
    return name


def _raises(code, fn, *a, **kw):
    with pytest.raises(MlflowException) as e:
        fn(*a, **kw)
    assert error_code(e) == code, (e.value.error_code, str(e.value))
    return e.value


# --------------------------------------------------------------------------------------
# Registration and loading
# --------------------------------------------------------------------------------------


def _wire_version(api, name, version):
    r = api.get(f"{REG}/model-versions/get", params={"name": name, "version": str(version)})
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def test_log_model_with_registered_model_name(client, reg, api):
    assert str(reg.info1.registered_model_version) == "1"
    mv = client.get_model_version(reg.name, "1")
    assert mv.name == reg.name
    assert mv.version == "1"
    assert mv.current_stage == "None"
    assert mv.status == "READY"
    assert mv.source == f"models:/{reg.mid1}"
    # model_id is not part of MLflow 3.17's ModelVersion on the wire (and the client's
    # from_proto drops it); where a server sends it, it must be right
    assert _wire_version(api, reg.name, 1).get("model_id") in (None, reg.mid1)
    assert mv.run_id == reg.run1  # filled in from the logged model's source run
    assert isinstance(mv.creation_timestamp, int) and mv.creation_timestamp > 0
    assert mv.last_updated_timestamp >= mv.creation_timestamp
    assert mv.aliases == []

    rm = client.get_registered_model(reg.name)
    assert rm.name == reg.name
    assert rm.creation_timestamp > 0
    assert rm.last_updated_timestamp >= rm.creation_timestamp
    # latest version per stage: both versions are in stage None
    assert [v.version for v in rm.latest_versions] == ["2"]


def test_register_model_from_runs_uri(client, reg, api):
    mv2 = reg.mv2
    assert mv2.version == "2"
    assert mv2.status == "READY"
    assert mv2.source == f"models:/{reg.mid2}"
    got = client.get_model_version(reg.name, "2")
    assert got.run_id == reg.run2
    assert _wire_version(api, reg.name, 2).get("model_id") in (None, reg.mid2)


def test_load_by_version_latest_and_download(client, reg, tmp_path):
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{reg.name}/1").predict(reg.X), reg.pred1)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(f"models:/{reg.name}/2").predict(reg.X), reg.pred2)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{reg.name}/latest").predict(reg.X), reg.pred2)

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{reg.name}/1", dst_path=str(tmp_path / "v1")))
    assert (local / "MLmodel").is_file()
    assert yaml.safe_load((local / "MLmodel").read_text())["model_id"] == reg.mid1
    assert (local / "model.pkl").is_file() or any(p.suffix in (".pkl", ".skops") for p in local.iterdir())


def test_download_uri_is_the_logged_model_location(client, reg):
    uri = client.get_model_version_download_uri(reg.name, "1")
    assert uri == client.get_logged_model(reg.mid1).artifact_location
    assert uri.startswith("mlflow-artifacts:/")


# --------------------------------------------------------------------------------------
# Aliases
# --------------------------------------------------------------------------------------


def test_alias_resolution_and_repoint(client, reg, tmp_path):
    name = _fresh_model(client, reg)
    client.set_registered_model_alias(name, "champion", "2")

    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(reg.X), reg.pred2)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(f"models:/{name}@champion").predict(reg.X), reg.pred2)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(tmp_path / "a")))
    assert yaml.safe_load((local / "MLmodel").read_text())["model_id"] == reg.mid2

    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.version == "2"
    assert mv.name == name
    assert mv.aliases == ["champion"]
    assert client.get_model_version(name, "2").aliases == ["champion"]
    assert client.get_model_version(name, "1").aliases == []
    assert client.get_registered_model(name).aliases == {"champion": "2"}

    # re-point: the alias moves, it is not duplicated
    client.set_registered_model_alias(name, "champion", "1")
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(reg.X), reg.pred1)
    assert client.get_model_version(name, "2").aliases == []
    assert client.get_model_version(name, "1").aliases == ["champion"]

    # two aliases on one version
    client.set_registered_model_alias(name, "blue", "1")
    assert sorted(client.get_model_version(name, "1").aliases) == ["blue", "champion"]
    assert client.get_registered_model(name).aliases == {"champion": "1", "blue": "1"}

    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {"blue": "1"}
    _raises("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, name, "champion")


def test_unknown_alias_is_invalid_parameter_value(client, reg, api):
    e = _raises("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, reg.name, "no-such-alias")
    assert e.get_http_status_code() == 400
    with pytest.raises(MlflowException) as e2:
        mlflow.pyfunc.load_model(f"models:/{reg.name}@no-such-alias")
    assert e2.value.error_code == "INVALID_PARAMETER_VALUE"
    r = api.get(f"{REG}/registered-models/alias", params={"name": reg.name, "alias": "no-such-alias"})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_latest_alias_resolves_to_highest_version(client, reg):
    """MLflow's get-by-alias treats 'latest' (case-insensitive) as the highest live version."""
    name = _fresh_model(client, reg, ("mid1", "mid2", "mid1"))
    assert client.get_model_version_by_alias(name, "latest").version == "3"
    assert client.get_model_version_by_alias(name, "LATEST").version == "3"
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}@latest").predict(reg.X), reg.pred1)


@pytest.mark.parametrize("alias", ["latest", "Latest", "v1", "V12"])
def test_reserved_aliases_rejected(client, reg, alias):
    name = _fresh_model(client, reg, ("mid1",))
    _raises("INVALID_PARAMETER_VALUE", client.set_registered_model_alias, name, alias, "1")
    assert client.get_registered_model(name).aliases == {}
    assert client.get_model_version(name, "1").aliases == []


def test_invalid_alias_names_rejected(client, reg, api):
    name = _fresh_model(client, reg, ("mid1",))
    for alias in ["has space", "semi;colon", "a/b", ""]:
        r = api.post(f"{REG}/registered-models/alias", {"name": name, "alias": alias, "version": "1"})
        assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get_registered_model(name).aliases == {}
    # allowed: letters, digits, '_' and '-' ; 'v1x' is not a version-shaped name
    for alias in ["prod_2024-01", "v1x", "version"]:
        client.set_registered_model_alias(name, alias, "1")
    assert client.get_registered_model(name).aliases == {"prod_2024-01": "1", "v1x": "1", "version": "1"}


def test_alias_on_unknown_version(client, reg):
    name = _fresh_model(client, reg, ("mid1",))
    _raises("RESOURCE_DOES_NOT_EXIST", client.set_registered_model_alias, name, "champion", "7")
    _raises("RESOURCE_DOES_NOT_EXIST", client.set_registered_model_alias, unique("nope"), "champion", "1")
    assert client.get_registered_model(name).aliases == {}


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_unknown_model_and_version(client, reg, api):
    missing = unique("missing-model")
    e = _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, missing)
    assert e.get_http_status_code() == 404
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, missing, "1")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, reg.name, "99")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version_download_uri, reg.name, "99")
    _raises("RESOURCE_DOES_NOT_EXIST", client.delete_model_version, reg.name, "99")
    _raises("RESOURCE_DOES_NOT_EXIST", client.update_model_version, reg.name, "99", "d")
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_latest_versions, missing)
    _raises("RESOURCE_DOES_NOT_EXIST", client.update_registered_model, missing, "d")
    _raises("RESOURCE_DOES_NOT_EXIST", client.delete_registered_model, missing)
    _raises("RESOURCE_DOES_NOT_EXIST", client.rename_registered_model, missing, unique("x"))
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version_by_alias, missing, "champion")
    with pytest.raises(MlflowException) as e2:
        mlflow.pyfunc.load_model(f"models:/{missing}/1")
    assert e2.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e3:
        mlflow.pyfunc.load_model(f"models:/{reg.name}/99")
    assert e3.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    # a version of a registered model that does not exist
    r = api.post(
        f"{REG}/model-versions/create",
        {"name": missing, "source": f"models:/{reg.mid1}", "model_id": reg.mid1},
    )
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = api.get(f"{REG}/model-versions/get", params={"name": reg.name, "version": "99"})
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")


def test_create_existing_registered_model(client):
    a, b = unique("dup-a"), unique("dup-b")
    client.create_registered_model(a)
    client.create_registered_model(b)
    e = _raises("RESOURCE_ALREADY_EXISTS", client.create_registered_model, a)
    assert e.get_http_status_code() == 400
    _raises("RESOURCE_ALREADY_EXISTS", client.rename_registered_model, b, a)
    assert client.get_registered_model(b).name == b


def test_missing_required_fields(api):
    assert_json_error(api.post(f"{REG}/registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(api.post(f"{REG}/registered-models/create", {"name": ""}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(api.get(f"{REG}/registered-models/get", params={}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(
        api.post(f"{REG}/model-versions/create", {"name": unique("x")}), 400, "INVALID_PARAMETER_VALUE"
    )


# --------------------------------------------------------------------------------------
# Wire shapes: version numbers are strings
# --------------------------------------------------------------------------------------


def test_versions_are_strings_on_the_wire(client, reg, api):
    name = _fresh_model(client, reg)
    client.set_registered_model_alias(name, "champion", "1")

    r = api.get(f"{REG}/model-versions/get", params={"name": name, "version": "1"})
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert mv["version"] == "1"
    assert mv["name"] == name
    assert mv["current_stage"] == "None"
    assert mv["status"] == "READY"
    assert mv["source"] == f"models:/{reg.mid1}"
    assert mv.get("model_id") in (None, reg.mid1)
    assert mv["aliases"] == ["champion"]

    r = api.get(f"{REG}/registered-models/get", params={"name": name})
    assert r.status_code == 200, r.text
    rm = r.json()["registered_model"]
    assert rm["name"] == name
    assert rm["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [v["version"] for v in rm["latest_versions"]] == ["2"]

    r = api.get(f"{REG}/model-versions/search", params={"filter": f"name = '{name}'"})
    assert r.status_code == 200, r.text
    assert sorted(v["version"] for v in r.json()["model_versions"]) == ["1", "2"]

    r = api.post(
        f"{REG}/model-versions/create", {"name": name, "source": f"models:/{reg.mid2}", "model_id": reg.mid2}
    )
    assert r.status_code == 200, r.text
    assert r.json()["model_version"]["version"] == "3"
    assert r.json()["model_version"]["status"] == "READY"

    # get-latest-versions: the client tries POST then GET; both must work
    for resp in (
        api.post(f"{REG}/registered-models/get-latest-versions", {"name": name, "stages": ["None"]}),
        api.get(f"{REG}/registered-models/get-latest-versions", params={"name": name, "stages": "None"}),
    ):
        assert resp.status_code == 200, resp.text
        assert [v["version"] for v in resp.json()["model_versions"]] == ["3"]


@pytest.mark.parametrize("bad", ["abc", "1.5", "one", "1e3"])
def test_non_integer_version_is_invalid_parameter(client, reg, api, bad):
    _raises("INVALID_PARAMETER_VALUE", client.get_model_version, reg.name, bad)
    r = api.get(f"{REG}/model-versions/get", params={"name": reg.name, "version": bad})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post(f"{REG}/registered-models/alias", {"name": reg.name, "alias": "x", "version": bad})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post(
        f"{REG}/model-versions/transition-stage",
        {"name": reg.name, "version": bad, "stage": "Staging", "archive_existing_versions": False},
    )
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get_registered_model(reg.name).aliases == {}


# --------------------------------------------------------------------------------------
# Deletion, numbering, stages
# --------------------------------------------------------------------------------------


def test_delete_version_removes_aliases_and_numbers_are_not_reused(client, reg):
    name = _fresh_model(client, reg, ("mid1", "mid2", "mid1"))
    client.set_registered_model_alias(name, "champion", "3")
    client.set_registered_model_alias(name, "stable", "1")
    client.delete_model_version(name, "3")

    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, name, "3")
    _raises("INVALID_PARAMETER_VALUE", client.get_model_version_by_alias, name, "champion")
    assert client.get_registered_model(name).aliases == {"stable": "1"}
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1", "2"]
    with pytest.raises(MlflowException):
        mlflow.pyfunc.load_model(f"models:/{name}@champion")

    # the highest number was deleted: the next version is still 4, never 3 again
    assert new_version(client, name, reg.mid2).version == "4"
    client.delete_model_version(name, "4")
    client.delete_model_version(name, "2")
    assert new_version(client, name, reg.mid2).version == "5"
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1", "5"]
    assert [v.version for v in client.get_registered_model(name).latest_versions] == ["5"]
    # a deleted version cannot be aliased, transitioned or updated
    _raises("RESOURCE_DOES_NOT_EXIST", client.set_registered_model_alias, name, "again", "3")
    _raises("RESOURCE_DOES_NOT_EXIST", client.update_model_version, name, "3", "d")
    # 'latest' now means version 5
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}/latest").predict(reg.X), reg.pred2)


def test_transition_stage_archive_and_latest_versions(client, reg):
    name = _fresh_model(client, reg, ("mid1", "mid1", "mid2", "mid2", "mid1"))
    mv = client.transition_model_version_stage(name, "1", "Production")
    assert mv.current_stage == "Production" and mv.version == "1"
    client.transition_model_version_stage(name, "2", "Staging")
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}/Production").predict(reg.X), reg.pred1)

    mv = client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)
    assert mv.current_stage == "Production"
    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    assert stages == {"1": "Archived", "2": "Staging", "3": "Production", "4": "None", "5": "None"}
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}/Production").predict(reg.X), reg.pred2)
    np.testing.assert_array_equal(mlflow.sklearn.load_model(f"models:/{name}/Archived").predict(reg.X), reg.pred1)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{name}/Staging").predict(reg.X), reg.pred1)

    # stage names are case-insensitive and come back canonical; without archiving two
    # versions share Production and the highest one is "latest"
    mv = client.transition_model_version_stage(name, "4", "production", archive_existing_versions=False)
    assert mv.current_stage == "Production"
    assert client.get_model_version(name, "3").current_stage == "Production"
    assert [v.version for v in client.get_latest_versions(name, ["Production"])] == ["4"]
    assert sorted(v.version for v in client.get_latest_versions(name, ["Production", "Staging"])) == ["2", "4"]
    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"None": "5", "Staging": "2", "Production": "4", "Archived": "1"}
    rm_latest = {v.current_stage: v.version for v in client.get_registered_model(name).latest_versions}
    assert rm_latest == latest

    _raises("INVALID_PARAMETER_VALUE", client.transition_model_version_stage, name, "5", "Prod")
    _raises("RESOURCE_DOES_NOT_EXIST", client.transition_model_version_stage, name, "9", "Staging")
    assert client.get_model_version(name, "5").current_stage == "None"

    # archiving only touches the target stage, never other stages
    client.transition_model_version_stage(name, "5", "Staging", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Production", "4": "Production", "5": "Staging"}


# --------------------------------------------------------------------------------------
# Registered model CRUD and search
# --------------------------------------------------------------------------------------


def test_registered_model_crud(client, reg, api):
    name = unique("crud")
    rm = client.create_registered_model(name, tags={"team": "vision", "tier": "1"}, description="first")
    assert rm.name == name
    assert rm.description == "first"
    assert rm.tags == {"team": "vision", "tier": "1"}
    new_version(client, name, reg.mid1)
    client.set_registered_model_alias(name, "champion", "1")

    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "tier", "2")
    client.set_registered_model_tag(name, "owner", "ana")
    client.delete_registered_model_tag(name, "team")
    rm = client.get_registered_model(name)
    assert rm.description == "second"
    assert rm.tags == {"tier": "2", "owner": "ana"}
    assert rm.last_updated_timestamp >= rm.creation_timestamp

    new_name = unique("crud-renamed")
    client.rename_registered_model(name, new_name)  # the client returns None here
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, name)
    rm = client.get_registered_model(new_name)
    assert rm.description == "second"
    assert rm.tags == {"tier": "2", "owner": "ana"}
    assert rm.aliases == {"champion": "1"}
    mv = client.get_model_version(new_name, "1")
    assert mv.name == new_name
    assert _wire_version(api, new_name, 1).get("model_id") in (None, reg.mid1)
    assert client.search_model_versions(f"name = '{name}'") == []
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{new_name}@champion").predict(reg.X), reg.pred1)

    client.delete_registered_model(new_name)
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, new_name)
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_model_version, new_name, "1")
    assert client.search_model_versions(f"name = '{new_name}'") == []
    assert client.search_registered_models(f"name = '{new_name}'") == []


def test_search_registered_models(client):
    prefix = unique("srm")
    names = [f"{prefix}-{i}" for i in range(5)]
    for i, n in enumerate(names):
        client.create_registered_model(n, tags={"team": "a" if i % 2 == 0 else "b"})

    res = client.search_registered_models(f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [m.name for m in res] == names
    res = client.search_registered_models(f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [m.name for m in res] == names[::-1]
    res = client.search_registered_models(f"name ILIKE '{prefix.upper()}-%'")
    assert sorted(m.name for m in res) == names
    res = client.search_registered_models(f"name = '{names[3]}'")
    assert [m.name for m in res] == [names[3]]
    res = client.search_registered_models(f"name LIKE '{prefix}-%' AND tags.team = 'b'", order_by=["name ASC"])
    assert [m.name for m in res] == [names[1], names[3]]

    seen, token, pages = [], None, 0
    while True:
        page = client.search_registered_models(
            f"name LIKE '{prefix}-%'", max_results=2, order_by=["name ASC"], page_token=token
        )
        pages += 1
        assert len(page) <= 2
        seen.extend(m.name for m in page)
        token = page.token
        if not token:
            break
        assert pages < 10
    assert seen == names
    assert pages == 3


def test_model_version_update_tags_and_search(client, reg):
    name = _fresh_model(client, reg, ("mid1", "mid2", "mid1"))
    mv = client.update_model_version(name, "2", description="the constant one")
    assert mv.description == "the constant one"
    client.set_model_version_tag(name, "2", "validated", "yes")
    client.set_model_version_tag(name, "3", "validated", "no")
    client.set_model_version_tag(name, "3", "extra", "x")
    client.delete_model_version_tag(name, "3", "extra")
    assert client.get_model_version(name, "2").description == "the constant one"
    assert client.get_model_version(name, "2").tags == {"validated": "yes"}
    assert client.get_model_version(name, "3").tags == {"validated": "no"}
    assert client.get_model_version(name, "1").tags == {}

    def versions(flt, **kw):
        return [v.version for v in client.search_model_versions(flt, **kw)]

    assert versions(f"name = '{name}'", order_by=["version_number ASC"]) == ["1", "2", "3"]
    assert versions(f"name = '{name}'", order_by=["version_number DESC"]) == ["3", "2", "1"]
    assert versions(f"name = '{name}' AND tags.validated = 'yes'") == ["2"]
    assert versions(f"name = '{name}' AND run_id = '{reg.run2}'") == ["2"]
    assert sorted(versions(f"name = '{name}' AND run_id IN ('{reg.run1}', '{reg.run2}')")) == ["1", "2", "3"]
    assert versions(f"name = '{name}' AND version_number > 1", order_by=["version_number ASC"]) == ["2", "3"]
    assert versions(f"name = '{name}' AND source_path = 'models:/{reg.mid2}'") == ["2"]

    seen, token = [], None
    for _ in range(5):
        page = client.search_model_versions(
            f"name = '{name}'", max_results=2, order_by=["version_number ASC"], page_token=token
        )
        seen.extend(v.version for v in page)
        token = page.token
        if not token:
            break
    assert seen == ["1", "2", "3"]


def test_raw_delete_and_update_bodies(client, reg, api):
    """DELETE carries a JSON body, update is PATCH: exactly what the client sends."""
    name = _fresh_model(client, reg, ("mid1", "mid2"))
    r = api.patch(f"{REG}/registered-models/update", {"name": name, "description": "via patch"})
    assert r.status_code == 200, r.text
    assert r.json()["registered_model"]["description"] == "via patch"
    r = api.patch(f"{REG}/model-versions/update", {"name": name, "version": "1", "description": "v1 desc"})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"]["description"] == "v1 desc"
    r = api.delete(f"{REG}/model-versions/delete", {"name": name, "version": "2"})
    assert r.status_code == 200, r.text
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1"]
    r = api.delete(f"{REG}/registered-models/delete", {"name": name})
    assert r.status_code == 200, r.text
    _raises("RESOURCE_DOES_NOT_EXIST", client.get_registered_model, name)


def test_registry_survives_hard_restart(private_server):
    private_server.use()
    client = mlflow.MlflowClient(tracking_uri=private_server.url)
    eid = client.create_experiment(unique("reg-restart"))
    rid = client.create_run(eid).info.run_id
    lm = client.create_logged_model(eid, name="m", source_run_id=rid)
    name = unique("durable")
    client.create_registered_model(name, tags={"k": "v"})
    for _ in range(3):
        new_version(client, name, lm.model_id)
    client.set_registered_model_alias(name, "champion", "2")
    client.transition_model_version_stage(name, "1", "Production")
    client.delete_model_version(name, "3")

    private_server.restart(hard=True)
    client = mlflow.MlflowClient(tracking_uri=private_server.url)
    rm = client.get_registered_model(name)
    assert rm.tags == {"k": "v"}
    assert rm.aliases == {"champion": "2"}
    assert client.get_model_version(name, "1").current_stage == "Production"
    assert client.get_model_version(name, "2").aliases == ["champion"]
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1", "2"]
    assert new_version(client, name, lm.model_id).version == "4"
