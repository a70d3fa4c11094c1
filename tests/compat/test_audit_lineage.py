"""Slipway's native registry APIs: the append-only audit trail and model lineage.

GET /api/v1/audit?name=N[&version=V][&actor=A][&action=X][&since=ms][&until=ms][&max_results=k][&page_token=t]
GET /api/v1/lineage?name=N&version=V
GET /api/v1/lineage/datasets?digest=D
"""

import time
import uuid
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import assert_json_error, unique
from mlflow.exceptions import MlflowException
from registry_helpers import (
    AUDIT,
    LINEAGE,
    REG,
    Api,
    basic_auth,
    fit_models,
    log_sklearn,
    new_version,
)

RECORD_KEYS = {"id", "timestamp", "actor", "action", "object_type", "name", "before", "after"}


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture
def api(tracking):
    return Api(tracking.url)


@pytest.fixture(scope="module")
def lm(server):
    """A cheap logged model (no artifacts needed) to register versions from."""
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("audit"))
    rid = client.create_run(eid).info.run_id
    return client.create_logged_model(eid, name="m", source_run_id=rid).model_id


def _tags(snapshot):
    return {t["key"]: t["value"] for t in (snapshot or {}).get("tags", [])}


def _by_ids(records):
    return [r["id"] for r in records]


# --------------------------------------------------------------------------------------
# Audit trail
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trail(server, lm):
    """register (alice, Basic auth) -> alias (bob, header) -> re-alias (anonymous) ->
    second alias (alice) -> delete the version holding it (bob)."""
    server.use()
    api = Api(server.url)
    anon = mlflow.MlflowClient(tracking_uri=server.url)
    name = unique("audit-seq")
    t0 = now_ms()
    with basic_auth("alice"):
        alice = mlflow.MlflowClient(tracking_uri=server.url)
        alice.create_registered_model(name)
        new_version(alice, name, lm)
        new_version(alice, name, lm)
    r = api.post(
        f"{REG}/registered-models/alias",
        {"name": name, "alias": "champion", "version": "1"},
        headers={"X-Slipway-Actor": "bob"},
    )
    assert r.status_code == 200, r.text
    anon.set_registered_model_alias(name, "champion", "2")
    with basic_auth("alice"):
        alice.set_registered_model_alias(name, "challenger", "1")
    r = api.delete(f"{REG}/model-versions/delete", {"name": name, "version": "1"}, headers={"X-Slipway-Actor": "bob"})
    assert r.status_code == 200, r.text
    t1 = now_ms()
    return SimpleNamespace(name=name, t0=t0, t1=t1, records=api.audit(name=name))


def test_audit_exact_sequence(trail, lm):
    recs = trail.records
    for r in recs:
        assert RECORD_KEYS <= set(r), r
        assert r["name"] == trail.name
    summary = [(r["action"], r["actor"], r["object_type"], r.get("version")) for r in recs]
    assert summary == [
        ("create_registered_model", "alice", "registered_model", None),
        ("create_model_version", "alice", "model_version", "1"),
        ("create_model_version", "alice", "model_version", "2"),
        ("set_alias", "bob", "registered_model", "1"),
        ("set_alias", "anonymous", "registered_model", "2"),
        ("set_alias", "alice", "registered_model", "1"),
        ("delete_model_version", "bob", "model_version", "1"),
    ]
    ids = _by_ids(recs)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stamps = [r["timestamp"] for r in recs]
    assert stamps == sorted(stamps)
    assert trail.t0 - 5 <= stamps[0] and stamps[-1] <= trail.t1 + 5

    create_rm, mv1, mv2, alias1, realias, alias2, delete_v1 = recs
    assert create_rm["before"] is None
    assert create_rm["after"]["name"] == trail.name
    for rec, v in ((mv1, "1"), (mv2, "2")):
        assert rec["before"] is None
        assert rec["after"]["name"] == trail.name
        assert rec["after"]["version"] == v
        assert rec["after"]["source"] == f"models:/{lm}"
        assert rec["after"]["model_id"] == lm
        assert rec["after"]["current_stage"] == "None"
    assert alias1["before"] is None
    assert alias1["after"] == {"alias": "champion", "version": "1"}
    assert realias["before"] == {"alias": "champion", "version": "1"}
    assert realias["after"] == {"alias": "champion", "version": "2"}
    assert alias2["before"] is None
    assert alias2["after"] == {"alias": "challenger", "version": "1"}
    assert delete_v1["after"] is None
    assert delete_v1["before"]["version"] == "1"
    assert delete_v1["before"]["aliases"] == ["challenger"]  # the alias it took with it


def test_audit_filters_and_paging(trail, api):
    recs = trail.records
    name = trail.name
    assert _by_ids(api.audit(name=name, version="1")) == [r["id"] for r in recs if r.get("version") == "1"]
    assert _by_ids(api.audit(name=name, actor="bob")) == [r["id"] for r in recs if r["actor"] == "bob"]
    assert _by_ids(api.audit(name=name, actor="alice", action="set_alias")) == [recs[5]["id"]]
    assert [r["action"] for r in api.audit(name=name, action="create_model_version")] == ["create_model_version"] * 2
    assert api.audit(name=name, since=trail.t1 + 60_000) == []
    assert api.audit(name=name, until=trail.t0 - 60_000) == []
    assert _by_ids(api.audit(name=name, since=trail.t0 - 5, until=trail.t1 + 60_000)) == _by_ids(recs)
    assert api.audit(name=unique("never-existed")) == []

    # paging: 2 + 2 + 2 + 1, token absent on the last page
    pages, token, seen = 0, None, []
    while True:
        q = {"name": name, "max_results": 2}
        if token:
            q["page_token"] = token
        r = api.get(AUDIT, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["records"]) <= 2
        seen.extend(body["records"])
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
        assert pages < 10
    assert pages == 4
    assert seen == recs

    assert_json_error(api.get(AUDIT, params={"name": name, "max_results": "abc"}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(api.get(AUDIT, params={"name": name, "since": "yesterday"}), 400, "INVALID_PARAMETER_VALUE")


def test_audit_actor_precedence(api, lm):
    name = unique("audit-actor")
    url = api.url + f"{REG}/registered-models/create"
    # Basic user wins over the header
    r = requests.post(url, json={"name": name}, auth=("carol", "pw"), headers={"X-Slipway-Actor": "mallory"}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(
        api.url + f"{REG}/registered-models/set-tag",
        json={"name": name, "key": "k", "value": "v"},
        headers={"X-Slipway-Actor": "dave"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.delete(api.url + f"{REG}/registered-models/delete-tag", json={"name": name, "key": "k"}, timeout=30)
    assert r.status_code == 200, r.text
    assert [(x["action"], x["actor"]) for x in api.audit(name=name)] == [
        ("create_registered_model", "carol"),
        ("set_registered_model_tag", "dave"),
        ("delete_registered_model_tag", "anonymous"),
    ]


def test_failed_mutations_leave_no_record(client, api, lm):
    name = unique("audit-fail")
    client.create_registered_model(name)
    new_version(client, name, lm)
    before = api.audit(name=name)
    with pytest.raises(MlflowException):
        client.create_registered_model(name)
    with pytest.raises(MlflowException):
        client.set_registered_model_alias(name, "champion", "9")
    with pytest.raises(MlflowException):
        client.set_registered_model_alias(name, "latest", "1")
    with pytest.raises(MlflowException):
        client.transition_model_version_stage(name, "1", "Nowhere")
    with pytest.raises(MlflowException):
        client.delete_model_version(name, "2")
    with pytest.raises(MlflowException):
        client.create_model_version(name, "file:///etc/passwd")
    assert api.audit(name=name) == before


def test_audit_covers_every_action(client, api, lm):
    old, new = unique("audit-all"), unique("audit-all-renamed")
    client.create_registered_model(old, description="d0")
    client.update_registered_model(old, description="d1")
    client.set_registered_model_tag(old, "k", "v")
    client.delete_registered_model_tag(old, "k")
    new_version(client, old, lm)
    client.update_model_version(old, "1", description="vd")
    client.set_model_version_tag(old, "1", "t", "x")
    client.delete_model_version_tag(old, "1", "t")
    client.transition_model_version_stage(old, "1", "Staging")
    client.set_registered_model_alias(old, "a", "1")
    client.delete_registered_model_alias(old, "a")
    client.rename_registered_model(old, new)
    new_version(client, new, lm)
    client.delete_model_version(new, "2")
    client.delete_registered_model(new)

    merged = {r["id"]: r for r in api.audit(name=old) + api.audit(name=new)}
    recs = [merged[i] for i in sorted(merged)]
    assert [(r["action"], r["object_type"]) for r in recs] == [
        ("create_registered_model", "registered_model"),
        ("update_registered_model", "registered_model"),
        ("set_registered_model_tag", "registered_model"),
        ("delete_registered_model_tag", "registered_model"),
        ("create_model_version", "model_version"),
        ("update_model_version", "model_version"),
        ("set_model_version_tag", "model_version"),
        ("delete_model_version_tag", "model_version"),
        ("transition_stage", "model_version"),
        ("set_alias", "registered_model"),
        ("delete_alias", "registered_model"),
        ("rename_registered_model", "registered_model"),
        ("create_model_version", "model_version"),
        ("delete_model_version", "model_version"),
        ("delete_registered_model", "registered_model"),
    ]
    assert {r["actor"] for r in recs} == {"anonymous"}
    (c_rm, u_rm, st_rm, dt_rm, c_mv, u_mv, st_mv, dt_mv, tr, sa, da, ren, c_mv2, d_mv2, d_rm) = recs

    assert c_rm["before"] is None and c_rm["after"]["description"] == "d0"
    assert u_rm["before"]["description"] == "d0" and u_rm["after"]["description"] == "d1"
    assert _tags(st_rm["before"]) == {} and _tags(st_rm["after"]) == {"k": "v"}
    assert _tags(dt_rm["before"]) == {"k": "v"} and _tags(dt_rm["after"]) == {}
    assert c_mv["version"] == "1" and c_mv["before"] is None
    assert u_mv["before"].get("description") in (None, "") and u_mv["after"]["description"] == "vd"
    assert _tags(st_mv["before"]) == {} and _tags(st_mv["after"]) == {"t": "x"}
    assert _tags(dt_mv["before"]) == {"t": "x"} and _tags(dt_mv["after"]) == {}
    assert tr["version"] == "1"
    assert tr["before"]["current_stage"] == "None" and tr["after"]["current_stage"] == "Staging"
    assert sa["before"] is None and sa["after"] == {"alias": "a", "version": "1"}
    assert da["before"] == {"alias": "a", "version": "1"} and da["after"] is None
    assert ren["before"]["name"] == old and ren["after"]["name"] == new
    assert c_mv2["version"] == "2" and c_mv2["after"]["name"] == new
    assert d_mv2["version"] == "2" and d_mv2["before"]["version"] == "2" and d_mv2["after"] is None
    assert d_rm["before"]["name"] == new and d_rm["after"] is None
    # the record of a deleted model stays readable
    assert api.audit(name=new, action="delete_registered_model") == [d_rm]


def test_audit_archive_existing_records_both_versions(client, api, lm):
    name = unique("audit-archive")
    client.create_registered_model(name)
    new_version(client, name, lm)
    new_version(client, name, lm)
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    recs = api.audit(name=name, action="transition_stage")
    got = [(r["version"], r["before"]["current_stage"], r["after"]["current_stage"]) for r in recs]
    assert got[0] == ("1", "None", "Production")
    assert sorted(got[1:]) == [("1", "Production", "Archived"), ("2", "None", "Production")]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
def test_audit_cannot_be_edited(trail, api, method):
    first = trail.records[0]
    for path, body in (
        (AUDIT, {"id": first["id"], "actor": "mallory"}),
        (f"{AUDIT}?name={trail.name}", None),
        (f"{AUDIT}/{first['id']}", {"actor": "mallory"}),
    ):
        r = requests.request(method, api.url + path, json=body, timeout=30)
        assert_json_error(r, (404, 405))
    assert api.audit(name=trail.name) == trail.records


# --------------------------------------------------------------------------------------
# Lineage
# --------------------------------------------------------------------------------------


def _frame(rng, n):
    return pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "label": rng.integers(0, 2, size=n)}
    )


@pytest.fixture(scope="module")
def lin(server, tmp_path_factory):
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("lineage"))
    mlflow.set_experiment(experiment_id=eid)
    rng = np.random.default_rng(uuid.uuid4().int & 0xFFFFFFFF)  # digests unique to this session
    train = mlflow.data.from_pandas(_frame(rng, 30), name="train_ds", targets="label")
    evald = mlflow.data.from_pandas(_frame(rng, 10), name="eval_ds", targets="label")
    other = mlflow.data.from_pandas(_frame(rng, 12), name="other_ds", targets="label")
    commit = uuid.uuid4().hex + "abcdef01"
    name = unique("lineage-model")
    _, lr, _ = fit_models()

    with basic_auth("carol"):
        with mlflow.start_run(run_name="lineage-run") as run:
            mlflow.log_params({"alpha": "0.1", "depth": "3"})
            mlflow.log_metric("acc", 0.5, step=0)
            mlflow.log_metric("acc", 0.9, step=1)
            mlflow.log_metric("loss", 0.25, step=0)
            mlflow.set_tag("mlflow.source.git.commit", commit)
            mlflow.log_input(train, context="training")
            mlflow.log_input(evald, context="eval")
            info = log_sklearn(lr, registered_model_name=name)
    rid = run.info.run_id

    # a second model: trained on `other`, evaluated on the same eval set
    name2 = unique("lineage-other")
    with mlflow.start_run(run_name="other-run") as run2:
        mlflow.log_input(other, context="training")
        mlflow.log_input(evald, context="eval")
        mlflow.log_param("beta", "2")
        d = tmp_path_factory.mktemp("lin")
        (d / "model.txt").write_text("not really a model\n")
        mlflow.log_artifact(str(d / "model.txt"), artifact_path="model")
    rid2 = run2.info.run_id
    lm2 = client.create_logged_model(eid, name="m2", source_run_id=rid2)
    client.create_registered_model(name2)
    new_version(client, name2, lm2.model_id)  # v1 through a logged model
    client.create_model_version(name2, f"runs:/{rid2}/model", run_id=rid2)  # v2 straight from the run

    return SimpleNamespace(
        client=client,
        eid=eid,
        rid=rid,
        rid2=rid2,
        name=name,
        name2=name2,
        info=info,
        lm2=lm2.model_id,
        train=train,
        evald=evald,
        other=other,
        commit=commit,
    )


def _mv_keys(versions):
    return sorted((v["name"], v["version"]) for v in versions)


def _by_digest(api, digest):
    r = api.get(f"{LINEAGE}/datasets", params={"digest": digest})
    assert r.status_code == 200, r.text
    return r.json()["model_versions"]


def test_lineage_of_logged_sklearn_model(client, api, lin):
    got = api.lineage(lin.name, 1)
    mv = client.get_model_version(lin.name, "1")
    assert got["model_version"]["name"] == lin.name
    assert got["model_version"]["version"] == "1"
    assert got["model_version"]["model_id"] == lin.info.model_id
    assert got["logged_model_id"] == lin.info.model_id
    assert got["run_id"] == lin.rid
    assert got["experiment_id"] == lin.eid
    assert got["run_name"] == "lineage-run"
    assert {p["key"]: p["value"] for p in got["params"]} == {"alpha": "0.1", "depth": "3"}
    metrics = {m["key"]: m for m in got["metrics"]}
    assert set(metrics) == {"acc", "loss"}
    assert metrics["acc"]["value"] == 0.9 and metrics["acc"]["step"] == 1
    assert metrics["loss"]["value"] == 0.25 and metrics["loss"]["step"] == 0
    assert all(isinstance(m["timestamp"], int) and m["timestamp"] > 0 for m in got["metrics"])

    run = client.get_run(lin.rid)
    logged = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    datasets = {d["name"]: d for d in got["datasets"]}
    assert set(datasets) == {"train_ds", "eval_ds"}
    assert datasets["train_ds"]["digest"] == lin.train.digest
    assert datasets["train_ds"]["context"] == "training"
    assert datasets["eval_ds"]["digest"] == lin.evald.digest
    assert datasets["eval_ds"]["context"] == "eval"
    for n, d in datasets.items():
        assert d["source_type"] == logged[n].source_type
        assert d["source"] == logged[n].source
        assert d.get("schema") == logged[n].schema
        assert d.get("profile") == logged[n].profile

    assert got["git_commit"] == lin.commit
    assert got["source_name"] == run.data.tags["mlflow.source.name"]
    assert got["registered_by"] == "carol"
    assert got["registered_at"] == mv.creation_timestamp


def test_lineage_of_run_sourced_version(client, api, lin):
    v1 = api.lineage(lin.name2, 1)
    assert v1["logged_model_id"] == lin.lm2
    assert v1["run_id"] == lin.rid2
    v2 = api.lineage(lin.name2, 2)
    assert v2["logged_model_id"] is None
    assert v2["run_id"] == lin.rid2
    assert v2["run_name"] == "other-run"
    assert v2["registered_by"] == "anonymous"
    # the client tags the commit itself when it runs from a git checkout; lineage repeats the tag
    assert v2["git_commit"] == client.get_run(lin.rid2).data.tags.get("mlflow.source.git.commit")
    assert {p["key"]: p["value"] for p in v2["params"]} == {"beta": "2"}
    assert {(d["name"], d["context"]) for d in v2["datasets"]} == {("other_ds", "training"), ("eval_ds", "eval")}


def test_lineage_by_dataset_digest(client, api, lin):
    new_version(client, lin.name, lin.info.model_id)  # v2, same run through the same logged model
    assert _mv_keys(_by_digest(api, lin.train.digest)) == [(lin.name, "1"), (lin.name, "2")]
    assert _mv_keys(_by_digest(api, lin.other.digest)) == [(lin.name2, "1"), (lin.name2, "2")]
    assert _mv_keys(_by_digest(api, lin.evald.digest)) == sorted(
        [(lin.name, "1"), (lin.name, "2"), (lin.name2, "1"), (lin.name2, "2")]
    )
    for v in _by_digest(api, lin.train.digest):
        assert isinstance(v["version"], str)
        assert v["model_id"] == lin.info.model_id

    # only live versions
    client.delete_model_version(lin.name, "2")
    assert _mv_keys(_by_digest(api, lin.train.digest)) == [(lin.name, "1")]
    assert _by_digest(api, "0" * 8 + uuid.uuid4().hex[:8]) == []


def test_lineage_errors(api, lin):
    def get(params):
        return api.get(LINEAGE, params=params)

    assert_json_error(get({"name": unique("nope"), "version": "1"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_json_error(get({"name": lin.name, "version": "99"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert_json_error(get({"name": lin.name, "version": "abc"}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(get({"name": lin.name}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(get({"version": "1"}), 400, "INVALID_PARAMETER_VALUE")
    assert_json_error(api.get(f"{LINEAGE}/datasets", params={}), 400, "INVALID_PARAMETER_VALUE")
