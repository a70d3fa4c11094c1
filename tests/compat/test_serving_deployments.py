"""Deployments: CRUD over HTTP and the CLI, audit records, canary split, shadow traffic,
the prediction log (Arrow IPC streams read with pyarrow) and per-deployment metrics.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import unique
from registry_helpers import Api, assert_no_panic, run_cli
from serving_helpers import DEPLOYMENTS

LOG_COLUMNS = [
    "request_id",
    "row",
    "timestamp",
    "deployment",
    "model",
    "version",
    "role",
    "protocol",
    "status",
    "latency_us",
]


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-deployments")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    models = sh.versioned_models()
    name = unique("dep-model")
    sh.register_versions(srv, name, models, aliases={"champion": "1", "challenger": "2"})
    X = sh._float_data(77, 3)
    state = type("Dep", (), {})()
    state.srv, state.name, state.models, state.X = srv, name, models, X
    state.expected = sh.expected_per_version(models, X)
    state.api = Api(srv.url)
    yield state
    srv.stop()


def _inv(dep, d, rid=None, X=None):
    X = dep.X if X is None else X
    headers = {"Content-Type": "application/json"}
    if rid:
        headers["X-Request-Id"] = rid
    return requests.post(
        f"{dep.srv.url}/serving/{d}/invocations", data=json.dumps({"inputs": X.tolist()}), headers=headers, timeout=60
    )


def _check_answer(dep, r, want_version=None):
    assert r.status_code == 200, (r.status_code, r.text[:300])
    v = r.headers.get("X-Slipway-Model-Version")
    if want_version is not None:
        assert v == want_version, (v, want_version, dict(r.headers))
    got = np.asarray(r.json()["predictions"]["variable"], dtype=np.float64)
    np.testing.assert_allclose(got, dep.expected[v], atol=sh.TOL, rtol=0, err_msg=f"version {v}")
    return v


def _flush(dep):
    r = requests.post(f"{dep.srv.url}/api/v1/prediction-logs/flush", timeout=60)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    files = r.json()["files"]
    assert isinstance(files, list), r.json()
    return files


def _log_table(dep, d, files_seen):
    """All prediction-log rows of deployment d, from every file any flush returned."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    tables = []
    for f in sorted(files_seen):
        if f"deployment={d}/" not in f:
            continue
        assert f.startswith(f"serving/prediction-logs/deployment={d}/date="), f
        assert "/hour=" in f, f
        path = dep.srv.data_dir / "artifacts" / f
        assert path.is_file(), f"flush returned {f} but {path} does not exist"
        with open(path, "rb") as fh:
            tables.append(ipc.open_file(fh).read_all())
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


_FILES_SEEN = set()


def _flush_until(dep, d, pred, timeout=20):
    files_seen = _FILES_SEEN
    deadline = time.monotonic() + timeout
    while True:
        files_seen.update(_flush(dep))
        t = _log_table(dep, d, files_seen)
        if t is not None and pred(t):
            return t
        if time.monotonic() > deadline:
            return t
        time.sleep(0.5)


# --------------------------------------------------------------------------------------
# CRUD
# --------------------------------------------------------------------------------------


def test_crud_over_http_with_audit(dep):
    d = "crud-http"
    t0 = int(time.time() * 1000) - 5000
    body = sh.create_deployment(dep.srv.url, {"name": d, "model": dep.name, "alias": "champion", "max_batch_rows": 16})
    created = body["deployment"]
    assert created["name"] == d and created["model"] == dep.name and created["alias"] == "champion", created
    assert created.get("max_batch_rows") == 16, created
    assert "version" not in created or created["version"] in (None, ""), created
    assert isinstance(created["creation_timestamp"], int) and created["creation_timestamp"] >= t0, created
    assert created["last_updated_timestamp"] >= created["creation_timestamp"], created
    sh.wait_deployment_ready(dep.srv.url, d)
    _check_answer(dep, _inv(dep, d), "1")

    r = requests.get(dep.srv.url + DEPLOYMENTS, timeout=30)
    assert r.status_code == 200
    assert d in [x["name"] for x in r.json()["deployments"]], r.json()

    r = requests.get(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=30)
    assert r.status_code == 200, r.text
    shown = r.json()["deployment"]
    assert shown["name"] == d and shown["alias"] == "champion"
    assert str(shown["status"]["primary"]["version"]) == "1", shown
    assert shown["creation_timestamp"] == created["creation_timestamp"]

    # update: follow another alias
    time.sleep(0.01)
    r = requests.patch(f"{dep.srv.url}{DEPLOYMENTS}/{d}", json={"alias": "challenger"}, timeout=60)
    assert r.status_code == 200, r.text
    upd = r.json()["deployment"]
    assert upd["alias"] == "challenger" and upd["max_batch_rows"] == 16, upd
    assert upd["creation_timestamp"] == created["creation_timestamp"]
    assert upd["last_updated_timestamp"] > created["last_updated_timestamp"], upd
    deadline = time.monotonic() + 30
    while True:
        r = _inv(dep, d)
        if r.headers.get("X-Slipway-Model-Version") == "2" or time.monotonic() > deadline:
            break
        _check_answer(dep, r, "1")
        time.sleep(0.1)
    _check_answer(dep, r, "2")

    # update: pin a version
    r = requests.patch(f"{dep.srv.url}{DEPLOYMENTS}/{d}", json={"version": "3"}, timeout=60)
    assert r.status_code == 200, r.text
    upd = r.json()["deployment"]
    assert str(upd["version"]) == "3" and not upd.get("alias"), upd
    deadline = time.monotonic() + 30
    while _inv(dep, d).headers.get("X-Slipway-Model-Version") != "3" and time.monotonic() < deadline:
        time.sleep(0.1)
    _check_answer(dep, _inv(dep, d), "3")

    r = requests.delete(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {}, r.json()
    assert requests.get(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=30).status_code == 404
    r = _inv(dep, d)
    assert r.status_code == 404, (r.status_code, r.text[:300])
    assert d not in [x["name"] for x in requests.get(dep.srv.url + DEPLOYMENTS, timeout=30).json()["deployments"]]

    records = dep.api.audit(name=d)
    actions = [rec.get("action") for rec in records]
    assert sorted(actions) == sorted(
        ["create_deployment", "update_deployment", "update_deployment", "delete_deployment"]
    ), records
    for action in ("create_deployment", "update_deployment", "delete_deployment"):
        assert dep.api.audit(name=d, action=action), action


def _cli(dep, *args):
    p = run_cli(sh.slipway_bin(), "deployments", *args, "--tracking-uri", dep.srv.url, timeout=120)
    assert_no_panic(p)
    return p


def _cli_json(dep, *args):
    p = _cli(dep, *args, "--json")
    assert p.returncode == 0, f"{args}: rc {p.returncode}\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}"
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"{args}: stdout is not JSON: {p.stdout[:1500]!r}")


def _one(out):
    return out.get("deployment", out) if isinstance(out, dict) else out


def test_crud_over_cli_with_audit(dep):
    d = "crud-cli"
    out = _one(_cli_json(dep, "create", d, "--model", dep.name, "--alias", "champion", "--log-sample", "0.5"))
    assert out["name"] == d and out["model"] == dep.name and out["alias"] == "champion", out
    assert out.get("log_sample") == 0.5, out
    sh.wait_deployment_ready(dep.srv.url, d)
    _check_answer(dep, _inv(dep, d), "1")

    listed = _cli_json(dep, "list")
    listed = listed.get("deployments", listed) if isinstance(listed, dict) else listed
    assert d in [x["name"] for x in listed], listed

    shown = _one(_cli_json(dep, "show", d))
    assert shown["name"] == d and shown["alias"] == "champion", shown
    assert str(shown["status"]["primary"]["version"]) == "1", shown

    upd = _one(_cli_json(dep, "update", d, "--canary", "2:0.25"))
    assert str(upd["canary"].get("version")) == "2" and abs(upd["canary"]["weight"] - 0.25) < 1e-9, upd
    assert upd["alias"] == "champion" and upd.get("log_sample") == 0.5, upd  # only the flags given change
    upd = _one(_cli_json(dep, "update", d, "--canary", "@challenger:0.5", "--shadow", "3"))
    assert upd["canary"].get("alias") == "challenger" and abs(upd["canary"]["weight"] - 0.5) < 1e-9, upd
    assert str(upd["shadow"].get("version")) == "3", upd

    # the same through HTTP
    http = requests.get(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=30).json()["deployment"]
    assert http["canary"] == upd["canary"] and http["shadow"] == upd["shadow"], (http, upd)

    # table output works too
    p = _cli(dep, "list")
    assert p.returncode == 0 and d in p.stdout, (p.returncode, p.stdout, p.stderr)
    p = _cli(dep, "show", d)
    assert p.returncode == 0 and d in p.stdout and dep.name in p.stdout, (p.stdout, p.stderr)

    # CLI errors: bad canary weight, unknown deployment
    p = _cli(dep, "update", d, "--canary", "2:1.5")
    assert p.returncode != 0, p.stdout
    p = _cli(dep, "show", "no-such-deployment")
    assert p.returncode != 0, p.stdout
    p = _cli(dep, "create", unique("cli-bad"), "--model", dep.name, "--alias", "champion", "--version", "1")
    assert p.returncode != 0, p.stdout

    out = _cli(dep, "delete", d, "--json")
    assert out.returncode == 0, out.stderr
    assert requests.get(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=30).status_code == 404
    p = _cli(dep, "show", d)
    assert p.returncode != 0

    actions = sorted(rec.get("action") for rec in dep.api.audit(name=d))
    assert actions == sorted(
        ["create_deployment", "update_deployment", "update_deployment", "delete_deployment"]
    ), actions


# --------------------------------------------------------------------------------------
# Canary
# --------------------------------------------------------------------------------------

CANARY_REQUESTS = 2000


def test_canary_weight_10_percent(dep):
    d = "canary"
    sh.create_deployment(
        dep.srv.url, {"name": d, "model": dep.name, "alias": "champion", "canary": {"version": "2", "weight": 0.1}}
    )
    sh.wait_deployment_ready(dep.srv.url, d)
    shown = requests.get(f"{dep.srv.url}{DEPLOYMENTS}/{d}", timeout=30).json()["deployment"]
    assert str(shown["status"]["canary"]["version"]) == "2", shown
    body = json.dumps({"inputs": dep.X.tolist()}).encode()
    local = threading.local()
    ids = [f"can-{i}-{uuid.uuid4().hex[:8]}" for i in range(CANARY_REQUESTS)]

    def one(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        r = s.post(
            f"{dep.srv.url}/serving/{d}/invocations",
            data=body,
            headers={"Content-Type": "application/json", "X-Request-Id": ids[i]},
            timeout=60,
        )
        return r.status_code, r.headers.get("X-Slipway-Model-Version"), r.content, r.headers.get("X-Request-Id")

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(CANARY_REQUESTS)))
    bad = [r for r in results if r[0] != 200]
    assert not bad, f"{len(bad)} failed: {bad[:3]}"
    by_version = {}
    for (status, v, content, rid), sent in zip(results, ids):
        assert rid == sent
        got = np.asarray(json.loads(content)["predictions"]["variable"], dtype=np.float64)
        assert v in ("1", "2"), v
        assert np.all(np.abs(got - dep.expected[v]) <= sh.TOL), f"answer does not match version {v}"
        by_version.setdefault(v, []).append(rid)
    n2 = len(by_version.get("2", []))
    assert 0.05 * CANARY_REQUESTS <= n2 <= 0.15 * CANARY_REQUESTS, f"canary answered {n2} of {CANARY_REQUESTS}"

    # the prediction log tags canary rows as such, one row per request row
    t = _flush_until(dep, d, lambda t: t.num_rows >= CANARY_REQUESTS * len(dep.X))
    assert t is not None, "no prediction log for the canary deployment"
    rows = t.to_pylist()
    canary_ids = {r["request_id"] for r in rows if r["role"] == "canary"}
    primary_ids = {r["request_id"] for r in rows if r["role"] == "primary"}
    assert canary_ids == set(by_version["2"]), (len(canary_ids), n2)
    assert primary_ids == set(by_version["1"]), (len(primary_ids), len(by_version["1"]))
    assert all(r["version"] == ("2" if r["role"] == "canary" else "1") for r in rows)


# --------------------------------------------------------------------------------------
# Shadow + prediction log + metrics
# --------------------------------------------------------------------------------------

SHADOW_REQUESTS = 40


def test_shadow_never_answers_and_is_logged(dep):
    import pyarrow as pa

    d = "shadowed"
    sh.create_deployment(dep.srv.url, {"name": d, "model": dep.name, "alias": "champion", "shadow": {"version": "3"}})
    sh.wait_deployment_ready(dep.srv.url, d)
    sent = []
    for i in range(SHADOW_REQUESTS):
        rid = f"shadow-{i:03d}-{uuid.uuid4().hex[:8]}"
        r = _inv(dep, d, rid=rid)
        _check_answer(dep, r, "1")  # always the primary
        assert r.headers.get("X-Request-Id") == rid
        assert r.headers.get("X-Slipway-Deployment") == d
        sent.append(rid)
    n_rows = len(dep.X)

    def complete(t):
        roles = t.column("role").to_pylist()
        return roles.count("primary") >= SHADOW_REQUESTS * n_rows and roles.count("shadow") >= SHADOW_REQUESTS * n_rows

    t = _flush_until(dep, d, complete)
    assert t is not None, "flush returned no prediction-log file for the deployment"
    names = t.schema.names
    for c in LOG_COLUMNS:
        assert c in names, f"prediction log lacks column {c}: {names}"
    assert "input.X" in names and "output.variable" in names, names
    assert pa.types.is_timestamp(t.schema.field("timestamp").type), t.schema
    assert pa.types.is_fixed_size_list(t.schema.field("input.X").type), t.schema.field("input.X")
    rows = t.to_pylist()
    primary = [r for r in rows if r["role"] == "primary"]
    shadow = [r for r in rows if r["role"] == "shadow"]
    assert shadow, "no shadow rows logged"
    assert {r["role"] for r in rows} <= {"primary", "shadow"}, {r["role"] for r in rows}

    # one row per request row, request ids as sent, inputs as sent, outputs as answered
    assert len(primary) == SHADOW_REQUESTS * n_rows, (len(primary), SHADOW_REQUESTS * n_rows)
    assert sorted({r["request_id"] for r in primary}) == sorted(sent)
    for rid in sent:
        mine = sorted((r for r in primary if r["request_id"] == rid), key=lambda r: r["row"])
        assert [r["row"] for r in mine] == list(range(n_rows)), (rid, [r["row"] for r in mine])
        for r in mine:
            assert r["deployment"] == d and r["model"] == dep.name and r["version"] == "1", r
            assert r["protocol"] == "mlflow" and r["status"] == 200, r
            assert isinstance(r["latency_us"], int) and r["latency_us"] >= 0, r
            np.testing.assert_allclose(r["input.X"], dep.X[r["row"]], atol=0, rtol=0)
            out = np.asarray(r["output.variable"], dtype=np.float64).reshape(-1)
            np.testing.assert_allclose(out, dep.expected["1"][r["row"]], atol=sh.TOL, rtol=0)
    for r in shadow:
        assert r["version"] == "3" and r["deployment"] == d, r
        assert r["request_id"] in sent, r["request_id"]
        out = np.asarray(r["output.variable"], dtype=np.float64).reshape(-1)
        np.testing.assert_allclose(out, dep.expected["3"][r["row"]], atol=sh.TOL, rtol=0)
    assert len(shadow) == SHADOW_REQUESTS * n_rows, len(shadow)

    # metrics with the deployment label
    text = sh.get_metrics(dep.srv.url)
    assert sh.metric_sum(text, "slipway_serving_requests_total", deployment=d, code="200", protocol="mlflow") >= SHADOW_REQUESTS
    assert sh.metric_values(text, "slipway_serving_request_duration_seconds_bucket", deployment=d), "no latency histogram"
    assert sh.metric_sum(text, "slipway_serving_request_duration_seconds_count", deployment=d) >= SHADOW_REQUESTS
    assert sh.metric_values(text, "slipway_serving_request_duration_seconds_sum", deployment=d)
    assert sh.metric_sum(text, "slipway_serving_predictions_logged_total", deployment=d) >= SHADOW_REQUESTS * n_rows
    assert sh.metric_values(text, "slipway_serving_prediction_log_dropped_total", deployment=d), (
        "slipway_serving_prediction_log_dropped_total{deployment=...} missing"
    )
    assert sh.metric_values(text, "slipway_serving_batch_size_bucket", model=dep.name)
    assert sh.metric_values(text, "slipway_serving_queue_depth", model=dep.name)
    for n in ("slipway_serving_models_loaded", "slipway_serving_model_memory_bytes"):
        assert sh.metric_values(text, n), n
    # exposition format 0.0.4
    r = requests.get(dep.srv.url + "/metrics", timeout=30)
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    assert "version=0.0.4" in r.headers.get("Content-Type", ""), r.headers
    assert "# TYPE slipway_serving_request_duration_seconds histogram" in r.text


def test_prediction_log_file_names(dep):
    """Files are <version>-<ts>-<uuid>.arrow (IPC files) under deployment=/date=/hour= partitions."""
    import re

    d = "named"
    sh.create_deployment(dep.srv.url, {"name": d, "model": dep.name, "version": "2"})
    sh.wait_deployment_ready(dep.srv.url, d)
    _check_answer(dep, _inv(dep, d), "2")
    t = _flush_until(dep, d, lambda t: t.num_rows >= len(dep.X))
    assert t is not None and t.num_rows == len(dep.X), t
    files = [f for f in _FILES_SEEN if f"deployment={d}/" in f]
    assert files
    pat = re.compile(
        rf"^serving/prediction-logs/deployment={d}/date=\d{{4}}-\d{{2}}-\d{{2}}/hour=\d{{2}}/2-[^/]+\.arrow$"
    )
    assert all(pat.match(f) for f in files), files


def test_log_sample_zero_logs_nothing(dep):
    d = "unlogged"
    sh.create_deployment(dep.srv.url, {"name": d, "model": dep.name, "alias": "champion", "log_sample": 0})
    sh.wait_deployment_ready(dep.srv.url, d)
    for _ in range(10):
        _check_answer(dep, _inv(dep, d), "1")
    files = _flush(dep)
    assert not [f for f in files if f"deployment={d}/" in f], files
    text = sh.get_metrics(dep.srv.url)
    assert sh.metric_sum(text, "slipway_serving_predictions_logged_total", deployment=d) == 0
