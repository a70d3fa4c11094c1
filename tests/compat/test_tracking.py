"""Tracking API compatibility through the public MLflow client API."""

import json
import math
import sys
import time

import mlflow
import pandas as pd
import pytest
from conftest import unique
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

# --------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"


def test_set_experiment_creates_then_reuses(tracking, client):
    name = unique("set-exp")
    exp = mlflow.set_experiment(name)
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert isinstance(exp.experiment_id, str) and exp.experiment_id
    assert exp.artifact_location == f"mlflow-artifacts:/{exp.experiment_id}"
    # second call resolves the same experiment instead of creating another
    again = mlflow.set_experiment(name)
    assert again.experiment_id == exp.experiment_id
    fetched = client.get_experiment(exp.experiment_id)
    assert fetched.name == name
    assert fetched.creation_time is not None and fetched.creation_time > 0
    assert fetched.last_update_time is not None and fetched.last_update_time >= fetched.creation_time


def test_create_get_by_name_with_tags(client):
    name = unique("create-exp")
    eid = client.create_experiment(name, tags={"team": "vision", "stage": "dev"})
    exp = client.get_experiment(eid)
    assert exp.experiment_id == eid
    assert exp.name == name
    assert exp.tags["team"] == "vision"
    assert exp.tags["stage"] == "dev"
    by_name = client.get_experiment_by_name(name)
    assert by_name is not None and by_name.experiment_id == eid
    assert client.get_experiment_by_name(unique("no-such-exp")) is None


def test_experiment_tags_set_and_delete(client):
    eid = client.create_experiment(unique("exp-tags"))
    client.set_experiment_tag(eid, "k1", "v1")
    client.set_experiment_tag(eid, "k2", "v2")
    client.set_experiment_tag(eid, "k1", "v1-updated")  # overwrite allowed
    tags = client.get_experiment(eid).tags
    assert tags["k1"] == "v1-updated"
    assert tags["k2"] == "v2"
    client.delete_experiment_tag(eid, "k2")
    tags = client.get_experiment(eid).tags
    assert "k2" not in tags
    assert tags["k1"] == "v1-updated"


def test_rename_experiment(client):
    old = unique("rename-old")
    new = unique("rename-new")
    eid = client.create_experiment(old)
    client.rename_experiment(eid, new)
    assert client.get_experiment(eid).name == new
    assert client.get_experiment_by_name(new).experiment_id == eid
    assert client.get_experiment_by_name(old) is None


def test_delete_and_restore_experiment(client):
    name = unique("del-exp")
    eid = client.create_experiment(name)
    client.delete_experiment(eid)
    exp = client.get_experiment(eid)  # get still returns deleted experiments
    assert exp.lifecycle_stage == "deleted"

    flt = f"name = '{name}'"
    active = client.search_experiments(filter_string=flt)
    assert [e.experiment_id for e in active] == []
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=flt)
    assert [e.experiment_id for e in deleted] == [eid]
    allv = client.search_experiments(view_type=ViewType.ALL, filter_string=flt)
    assert [e.experiment_id for e in allv] == [eid]

    client.restore_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "active"
    active = client.search_experiments(filter_string=flt)
    assert [e.experiment_id for e in active] == [eid]


def test_search_experiments_filter_order_paging(client):
    prefix = unique("sx")
    names = [f"{prefix}-{i:02d}" for i in range(7)]
    ids = {}
    for i, n in enumerate(names):
        ids[n] = client.create_experiment(n, tags={"team": "a" if i % 2 == 0 else "b"})

    res = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert [e.name for e in res] == names

    res = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert [e.name for e in res] == list(reversed(names))

    res = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'a'", order_by=["name ASC"]
    )
    assert [e.name for e in res] == [n for i, n in enumerate(names) if i % 2 == 0]

    # ILIKE is case-insensitive, LIKE is case-sensitive
    res = client.search_experiments(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert sorted(e.name for e in res) == names
    res = client.search_experiments(filter_string=f"name LIKE '{prefix.upper()}-%'")
    assert list(res) == []

    # paging: 3 + 3 + 1, no duplicates, nothing missing, token absent on the last page
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{prefix}-%'",
            order_by=["name ASC"],
            max_results=3,
            page_token=token,
        )
        pages += 1
        assert len(page) <= 3
        seen.extend(e.name for e in page)
        token = page.token
        if not token:
            break
        assert pages < 10, "paging does not terminate"
    assert seen == names
    assert pages == 3

    # order by creation time
    res = client.search_experiments(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["creation_time DESC"]
    )
    ctimes = [e.creation_time for e in res]
    assert ctimes == sorted(ctimes, reverse=True)
    assert {e.experiment_id for e in res} == set(ids.values())


# --------------------------------------------------------------------------------------
# Runs: lifecycle, data shape, logging
# --------------------------------------------------------------------------------------


def test_run_data_shape(client, experiment_id):
    with mlflow.start_run(run_name="shape-run") as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_params({"beta": 2, "gamma": "g"})
        mlflow.log_metric("loss", 0.25, step=3, timestamp=1_700_000_000_123)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=1)
        mlflow.set_tag("team", "ml")
        mlflow.set_tags({"a": "1", "b": "2"})
        mlflow.delete_tag("b")
    rid = run.info.run_id

    r = client.get_run(rid)
    info = r.info
    assert info.run_id == rid
    assert info.experiment_id == experiment_id
    assert info.run_name == "shape-run"
    assert info.status == "FINISHED"
    assert info.lifecycle_stage == "active"
    assert isinstance(info.start_time, int) and info.start_time > 0
    assert isinstance(info.end_time, int) and info.end_time >= info.start_time
    assert info.artifact_uri.startswith(f"mlflow-artifacts:/{experiment_id}/")
    assert rid in info.artifact_uri
    assert isinstance(info.user_id, str)

    assert r.data.params == {"alpha": "0.5", "beta": "2", "gamma": "g"}
    assert r.data.metrics == {"loss": 0.25, "acc": 0.9, "f1": 0.8}
    tags = r.data.tags
    assert tags["team"] == "ml"
    assert tags["a"] == "1"
    assert "b" not in tags
    assert tags["mlflow.runName"] == "shape-run"
    assert "mlflow.user" in tags
    assert "mlflow.source.name" in tags

    hist = client.get_metric_history(rid, "loss")
    assert [(m.key, m.value, m.step, m.timestamp) for m in hist] == [
        ("loss", 0.25, 3, 1_700_000_000_123)
    ]


def test_latest_metric_is_max_step(client, experiment_id):
    run = client.create_run(experiment_id)
    rid = run.info.run_id
    client.log_metric(rid, "m", 1.0, timestamp=1000, step=0)
    client.log_metric(rid, "m", 3.0, timestamp=1001, step=5)
    client.log_metric(rid, "m", 10.0, timestamp=1002, step=2)
    assert client.get_run(rid).data.metrics["m"] == 3.0
    hist = client.get_metric_history(rid, "m")
    assert sorted((m.step, m.value, m.timestamp) for m in hist) == [
        (0, 1.0, 1000),
        (2, 10.0, 1002),
        (5, 3.0, 1001),
    ]


def test_nan_and_infinity_round_trip(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_metric("nan", float("nan"))
        mlflow.log_metric("pinf", float("inf"))
        mlflow.log_metric("ninf", float("-inf"))
        mlflow.log_metrics({"batch_nan": float("nan"), "batch_pinf": float("inf")})
    rid = run.info.run_id
    m = client.get_run(rid).data.metrics
    assert math.isnan(m["nan"])
    assert _is_pos_inf(m["pinf"])
    assert _is_neg_inf(m["ninf"])
    assert math.isnan(m["batch_nan"])
    assert _is_pos_inf(m["batch_pinf"])
    assert math.isnan(client.get_metric_history(rid, "nan")[0].value)
    assert _is_pos_inf(client.get_metric_history(rid, "pinf")[0].value)
    assert _is_neg_inf(client.get_metric_history(rid, "ninf")[0].value)


# The reference server (SQLAlchemy store) persists +-inf as +-sys.float_info.max; storing
# the exact infinity is also fine. Anything else (0, NaN, an error) is not.
def _is_pos_inf(v):
    return v == float("inf") or v == sys.float_info.max


def _is_neg_inf(v):
    return v == float("-inf") or v == -sys.float_info.max


def test_log_batch_and_same_param_value_is_idempotent(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_batch(
        rid,
        metrics=[Metric("b", float(i), 1_000 + i, i) for i in range(5)],
        params=[Param("p1", "v1"), Param("p2", "v2")],
        tags=[RunTag("t1", "x")],
    )
    client.log_param(rid, "p1", "v1")  # same value again: allowed
    r = client.get_run(rid)
    assert r.data.params == {"p1": "v1", "p2": "v2"}
    assert r.data.metrics == {"b": 4.0}
    assert r.data.tags["t1"] == "x"
    assert [m.value for m in client.get_metric_history(rid, "b")] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_nested_runs_parent_tag(client, experiment_id):
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child", nested=True) as child:
            assert mlflow.active_run().info.run_id == child.info.run_id
        assert mlflow.active_run().info.run_id == parent.info.run_id
    pid, cid = parent.info.run_id, child.info.run_id
    c = client.get_run(cid)
    assert c.data.tags["mlflow.parentRunId"] == pid
    assert "mlflow.parentRunId" not in client.get_run(pid).data.tags
    found = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{pid}'")
    assert [r.info.run_id for r in found] == [cid]


def test_end_run_statuses(client, experiment_id):
    mlflow.start_run()
    failed = mlflow.active_run().info.run_id
    mlflow.end_run(status="FAILED")
    assert client.get_run(failed).info.status == "FAILED"
    assert client.get_run(failed).info.end_time is not None

    run = client.create_run(experiment_id, run_name="manual")
    rid = run.info.run_id
    assert run.info.status == "RUNNING"
    assert client.get_run(rid).info.status == "RUNNING"
    assert client.get_run(rid).info.end_time in (None, 0)
    client.set_terminated(rid, status="KILLED")
    r = client.get_run(rid)
    assert r.info.status == "KILLED"
    assert r.info.end_time is not None and r.info.end_time >= r.info.start_time

    rid2 = client.create_run(experiment_id).info.run_id
    client.update_run(rid2, status="FINISHED", name="renamed-run")
    r2 = client.get_run(rid2)
    assert r2.info.status == "FINISHED"
    assert r2.info.run_name == "renamed-run"
    assert r2.data.tags.get("mlflow.runName") == "renamed-run"


def test_delete_and_restore_runs(client, experiment_id):
    ids = [client.create_run(experiment_id).info.run_id for _ in range(3)]
    client.delete_run(ids[1])
    assert client.get_run(ids[1]).info.lifecycle_stage == "deleted"

    default = {r.info.run_id for r in client.search_runs([experiment_id])}
    assert default == {ids[0], ids[2]}
    allv = {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}
    assert allv == set(ids)
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [ids[1]]
    assert set(mlflow.search_runs([experiment_id])["run_id"]) == {ids[0], ids[2]}

    client.restore_run(ids[1])
    assert client.get_run(ids[1]).info.lifecycle_stage == "active"
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == set(ids)


def test_metric_history_over_25000_points(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    n = 25_500
    base_ts = 1_600_000_000_000
    for start in range(0, n, 1000):
        client.log_batch(
            rid,
            metrics=[
                Metric("big", i * 0.5, base_ts + i, i) for i in range(start, min(n, start + 1000))
            ],
        )
    hist = client.get_metric_history(rid, "big")
    assert len(hist) == n
    assert [m.step for m in hist] == list(range(n))
    assert all(m.value == m.step * 0.5 for m in hist)
    assert all(m.timestamp == base_ts + m.step for m in hist)
    assert all(m.key == "big" for m in hist)
    assert client.get_run(rid).data.metrics["big"] == (n - 1) * 0.5


def test_log_input_dataset(client, experiment_id):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0, 1, 0]})
    ds = mlflow.data.from_pandas(df, name="train_ds", targets="b")
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training")
    r = client.get_run(run.info.run_id)
    inputs = r.inputs.dataset_inputs
    assert len(inputs) == 1
    got = inputs[0].dataset
    assert got.name == "train_ds"
    assert got.digest == ds.digest
    assert isinstance(got.source_type, str) and got.source_type
    assert isinstance(got.source, str) and got.source
    assert "a" in json.loads(got.schema)["mlflow_colspec"][0]["name"]
    assert got.profile
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training"}


# --------------------------------------------------------------------------------------
# search_runs
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def search_fixture(server):
    """Four runs with known attributes in their own experiment."""
    server.use()
    client = mlflow.MlflowClient(tracking_uri=server.url)
    eid = client.create_experiment(unique("search-runs"))
    mlflow.set_experiment(experiment_id=eid)

    ds1 = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), name="ds_one")
    ds2 = mlflow.data.from_pandas(pd.DataFrame({"y": [3, 4, 5]}), name="ds_two")
    runs = {}

    with mlflow.start_run(run_name="alpha-run") as r:
        mlflow.log_metrics({"x": 0.5, "y": 1.0})
        mlflow.log_params({"p": "a", "q": "1"})
        mlflow.set_tags({"t": "xyz", "color": "Red"})
        mlflow.log_input(ds1, context="training")
    runs["r1"] = r.info.run_id
    time.sleep(0.005)  # distinct millisecond start times (ordering setup, not an assertion)

    mlflow.start_run(run_name="beta-run")
    mlflow.log_metrics({"x": 2.0})
    mlflow.log_params({"p": "b", "q": "2"})
    mlflow.set_tags({"t": "abx", "color": "red"})
    runs["r2"] = mlflow.active_run().info.run_id
    mlflow.end_run(status="FAILED")
    time.sleep(0.005)

    with mlflow.start_run(run_name="gamma-run") as r:
        mlflow.log_metrics({"x": 3.0})
        mlflow.log_params({"p": "a", "q": "3"})
        mlflow.set_tags({"t": "nope"})
        mlflow.log_input(ds2, context="eval")
    runs["r3"] = r.info.run_id
    time.sleep(0.005)

    r4 = client.create_run(eid, run_name="delta")  # stays RUNNING, no tag "t"
    runs["r4"] = r4.info.run_id
    client.log_metric(runs["r4"], "x", 10.0)
    client.log_param(runs["r4"], "p", "c")
    client.log_param(runs["r4"], "q", "10")

    return {"eid": eid, "runs": runs, "ds1": ds1, "ds2": ds2, "client": client}


def _ids(runs):
    return [r.info.run_id for r in runs]


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("metrics.x > 1", {"r2", "r3", "r4"}),
        ("metrics.x >= 2 AND metrics.x < 10", {"r2", "r3"}),
        ("metric.x = 0.5", {"r1"}),
        ("metrics.x != 3", {"r1", "r2", "r4"}),
        ("metrics.y <= 1", {"r1"}),
        ("params.p = 'a'", {"r1", "r3"}),
        ("param.q != '1'", {"r2", "r3", "r4"}),
        ("params.p = 'a' AND metrics.x > 1", {"r3"}),
        ("tags.t LIKE '%x%'", {"r1", "r2"}),
        ("tags.t LIKE 'x%'", {"r1"}),
        ("tags.color LIKE 'red'", {"r2"}),
        ("tags.color ILIKE 'red'", {"r1", "r2"}),
        ("tags.color = 'Red'", {"r1"}),
        ("tags.t IS NULL", {"r4"}),
        ("tags.t IS NOT NULL", {"r1", "r2", "r3"}),
        ("attributes.status = 'FINISHED'", {"r1", "r3"}),
        ("attributes.status != 'FINISHED'", {"r2", "r4"}),
        ("status = 'RUNNING'", {"r4"}),
        ("attributes.run_name = 'alpha-run'", {"r1"}),
        ("attributes.run_name LIKE '%-run'", {"r1", "r2", "r3"}),
        ("run_name ILIKE 'ALPHA%'", {"r1"}),
        ("datasets.name = 'ds_one'", {"r1"}),
        ("datasets.name IN ('ds_one', 'ds_two')", {"r1", "r3"}),
        ("datasets.context = 'eval'", {"r3"}),
        ('tags."t" = \'nope\'', {"r3"}),
        ("tags.`color` = 'red'", {"r2"}),
    ],
)
def test_search_runs_filters(tracking, search_fixture, flt, expected):
    sf = search_fixture
    client = sf["client"]
    got = set(_ids(client.search_runs([sf["eid"]], flt)))
    want = {sf["runs"][k] for k in expected}
    assert got == want, flt


def test_search_runs_run_id_in_and_dataset_digest(tracking, search_fixture):
    sf = search_fixture
    client, runs, eid = sf["client"], sf["runs"], sf["eid"]
    flt = f"attribute.run_id IN ('{runs['r1']}', '{runs['r3']}')"
    assert set(_ids(client.search_runs([eid], flt))) == {runs["r1"], runs["r3"]}
    flt = f"attributes.run_id NOT IN ('{runs['r1']}', '{runs['r3']}')"
    assert set(_ids(client.search_runs([eid], flt))) == {runs["r2"], runs["r4"]}
    flt = f"attributes.run_id = '{runs['r2']}'"
    assert _ids(client.search_runs([eid], flt)) == [runs["r2"]]
    flt = f"datasets.digest = '{sf['ds2'].digest}'"
    assert _ids(client.search_runs([eid], flt)) == [runs["r3"]]


def test_search_runs_order_by(tracking, search_fixture):
    sf = search_fixture
    client, runs, eid = sf["client"], sf["runs"], sf["eid"]

    def order(*ob):
        return [
            k
            for rid in _ids(client.search_runs([eid], order_by=list(ob)))
            for k, v in runs.items()
            if v == rid
        ]

    assert order("metrics.x DESC") == ["r4", "r3", "r2", "r1"]
    assert order("metrics.x ASC") == ["r1", "r2", "r3", "r4"]
    # params are strings: lexicographic order
    assert order("params.q ASC") == ["r1", "r4", "r2", "r3"]
    assert order("params.q DESC") == ["r3", "r2", "r4", "r1"]
    assert order("start_time ASC") == ["r1", "r2", "r3", "r4"]
    assert order("attributes.start_time DESC") == ["r4", "r3", "r2", "r1"]
    assert order() == ["r4", "r3", "r2", "r1"]  # default: start_time DESC
    assert order("attributes.run_name ASC") == ["r1", "r2", "r4", "r3"]
    assert order("params.p ASC", "metrics.x DESC") == ["r3", "r1", "r2", "r4"]


def test_search_runs_pandas(tracking, search_fixture):
    sf = search_fixture
    runs, eid = sf["runs"], sf["eid"]
    df = mlflow.search_runs([eid], filter_string="metrics.x > 1", order_by=["metrics.x DESC"])
    assert isinstance(df, pd.DataFrame)
    assert list(df["run_id"]) == [runs["r4"], runs["r3"], runs["r2"]]
    assert list(df["metrics.x"]) == [10.0, 3.0, 2.0]
    assert list(df["params.p"]) == ["c", "a", "b"]
    assert list(df["status"]) == ["RUNNING", "FINISHED", "FAILED"]
    df = mlflow.search_runs([eid], filter_string="tags.t ILIKE '%X%'", order_by=["start_time ASC"])
    assert list(df["run_id"]) == [runs["r1"], runs["r2"]]
    assert list(df["tags.t"]) == ["xyz", "abx"]
    listed = mlflow.search_runs([eid], filter_string="params.p = 'a'", output_format="list")
    assert {r.info.run_id for r in listed} == {runs["r1"], runs["r3"]}


def test_search_runs_paging(client, experiment_id):
    base = 1_650_000_000_000
    ids = [
        client.create_run(experiment_id, start_time=base + i * 1000).info.run_id
        for i in range(23)
    ]
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_runs(
            [experiment_id], order_by=["start_time ASC"], max_results=5, page_token=token
        )
        pages += 1
        assert len(page) <= 5
        seen.extend(_ids(page))
        token = page.token
        if not token:
            break
        assert pages < 20, "paging does not terminate"
    assert pages == 5
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert seen == ids

    # default order (start_time DESC) also pages cleanly
    seen = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=7, page_token=token)
        seen.extend(_ids(page))
        token = page.token
        if not token:
            break
    assert seen == list(reversed(ids))

    # pandas search fetches every page itself
    df = mlflow.search_runs([experiment_id])
    assert sorted(df["run_id"]) == sorted(ids)


def test_search_runs_across_experiments(client):
    e1 = client.create_experiment(unique("multi-a"))
    e2 = client.create_experiment(unique("multi-b"))
    r1 = client.create_run(e1).info.run_id
    r2 = client.create_run(e2).info.run_id
    assert set(_ids(client.search_runs([e1, e2]))) == {r1, r2}
    assert _ids(client.search_runs([e1])) == [r1]


def test_get_run_of_deleted_run_still_works_but_search_hides(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_param(rid, "k", "v")
    client.delete_run(rid)
    r = client.get_run(rid)
    assert r.info.lifecycle_stage == "deleted"
    assert r.data.params == {"k": "v"}
    with pytest.raises(MlflowException):
        client.log_param(rid, "k2", "v2")


# --------------------------------------------------------------------------------------
# More semantics the client relies on
# --------------------------------------------------------------------------------------


def test_keys_with_slashes_spaces_colons_and_unicode_values(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_metric("train/loss", 0.5, step=1)
        mlflow.log_metric("train/loss", 0.25, step=2)
        mlflow.log_param("opt config", "adam")
        mlflow.log_param("unicode", "héllo wörld ✓ 🚀")
        mlflow.set_tag("ns:key", "v:1")
    rid = run.info.run_id
    r = client.get_run(rid)
    assert r.data.metrics["train/loss"] == 0.25
    assert r.data.params["opt config"] == "adam"
    assert r.data.params["unicode"] == "héllo wörld ✓ 🚀"
    assert r.data.tags["ns:key"] == "v:1"
    hist = client.get_metric_history(rid, "train/loss")
    assert [(m.step, m.value) for m in hist] == [(1, 0.5), (2, 0.25)]
    assert _ids(client.search_runs([experiment_id], "metrics.`train/loss` < 0.3")) == [rid]
    assert _ids(client.search_runs([experiment_id], "params.`opt config` = 'adam'")) == [rid]
    assert _ids(client.search_runs([experiment_id], "params.unicode = 'héllo wörld ✓ 🚀'")) == [rid]
    assert _ids(client.search_runs([experiment_id], "tags.`ns:key` = 'v:1'")) == [rid]


def test_set_tag_overwrites(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.set_tag(rid, "t", "one")
    client.set_tag(rid, "t", "two")
    assert client.get_run(rid).data.tags["t"] == "two"
    assert _ids(client.search_runs([experiment_id], "tags.t = 'two'")) == [rid]
    assert _ids(client.search_runs([experiment_id], "tags.t = 'one'")) == []


def test_search_runs_paging_with_ties(client, experiment_id):
    """Equal sort keys must still page without duplicates or gaps."""
    base = 1_660_000_000_000
    ids = []
    for i in range(13):
        rid = client.create_run(experiment_id, start_time=base + (i % 3)).info.run_id
        client.log_metric(rid, "x", 1.0)
        ids.append(rid)
    for order_by in (["metrics.x DESC"], ["start_time ASC"], None):
        seen = []
        token = None
        while True:
            page = client.search_runs(
                [experiment_id], order_by=order_by, max_results=5, page_token=token
            )
            seen.extend(_ids(page))
            token = page.token
            if not token:
                break
            assert len(seen) <= 13
        assert len(seen) == len(set(seen)) == 13, order_by
        assert set(seen) == set(ids)


def test_search_runs_order_by_missing_metric_last(client, experiment_id):
    base = 1_670_000_000_000
    a = client.create_run(experiment_id, start_time=base).info.run_id
    b = client.create_run(experiment_id, start_time=base + 1).info.run_id
    c = client.create_run(experiment_id, start_time=base + 2).info.run_id
    client.log_metric(a, "y", 1.0)
    client.log_metric(c, "y", 5.0)
    # runs without the metric sort last in either direction
    assert _ids(client.search_runs([experiment_id], order_by=["metrics.y ASC"])) == [a, c, b]
    assert _ids(client.search_runs([experiment_id], order_by=["metrics.y DESC"])) == [c, a, b]


def test_search_runs_numeric_attributes(client, experiment_id):
    base = 1_680_000_000_000
    ids = [client.create_run(experiment_id, start_time=base + i * 1000).info.run_id for i in range(5)]
    got = client.search_runs([experiment_id], f"attributes.start_time >= {base + 2000}")
    assert set(_ids(got)) == set(ids[2:])
    got = client.search_runs([experiment_id], f"start_time < {base + 2000}")
    assert set(_ids(got)) == set(ids[:2])
    client.set_terminated(ids[0], end_time=base + 10_000)
    got = client.search_runs([experiment_id], f"attributes.end_time > {base + 9_000}")
    assert _ids(got) == [ids[0]]


def test_deleting_experiment_deletes_its_runs(client):
    eid = client.create_experiment(unique("exp-with-runs"))
    rid = client.create_run(eid).info.run_id
    client.delete_experiment(eid)
    assert client.get_run(rid).info.lifecycle_stage == "deleted"
    assert client.search_runs([eid]) == []
    client.restore_experiment(eid)
    assert client.get_run(rid).info.lifecycle_stage == "active"
    assert _ids(client.search_runs([eid])) == [rid]


def test_log_same_dataset_twice_is_deduplicated(client, experiment_id):
    ds = mlflow.data.from_pandas(pd.DataFrame({"z": [1.0, 2.0]}), name="dedupe_ds")
    other = mlflow.data.from_pandas(pd.DataFrame({"w": [3.0]}), name="other_ds")
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training")
        mlflow.log_input(ds, context="training")
        mlflow.log_input(other, context="training")
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert sorted((i.dataset.name, i.dataset.digest) for i in inputs) == sorted(
        [("dedupe_ds", ds.digest), ("other_ds", other.digest)]
    )
