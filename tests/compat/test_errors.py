"""Error behaviour: client-visible exceptions and raw-HTTP bad input.

Every error must be a 4xx with a JSON body ``{"error_code": ..., "message": ...}``;
a 5xx for bad input would make the real client retry for minutes.
"""

import json
import socket
import threading
import uuid

import mlflow
import pytest
import requests
from conftest import RawResponse, assert_json_error, unique
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

UNKNOWN_RUN_ID = "0123456789abcdef0123456789abcdef"


def _code(excinfo):
    return excinfo.value.error_code


# --------------------------------------------------------------------------------------
# Through the public client
# --------------------------------------------------------------------------------------


def test_get_unknown_run(client):
    with pytest.raises(MlflowException) as e:
        client.get_run(UNKNOWN_RUN_ID)
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"
    assert e.value.get_http_status_code() == 404


def test_get_unknown_experiment(client):
    with pytest.raises(MlflowException) as e:
        client.get_experiment("987654321")
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_metric_history_of_unknown_run(client):
    # The reference server answers an empty history; RESOURCE_DOES_NOT_EXIST is also fine.
    try:
        hist = client.get_metric_history(UNKNOWN_RUN_ID, "m")
    except MlflowException as e:
        assert e.error_code == "RESOURCE_DOES_NOT_EXIST"
    else:
        assert list(hist) == []


def test_create_experiment_duplicate_name(client):
    name = unique("dup")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as e:
        client.create_experiment(name)
    assert _code(e) == "RESOURCE_ALREADY_EXISTS"


def test_deleted_experiment_name_stays_taken(client):
    name = unique("dup-deleted")
    eid = client.create_experiment(name)
    client.delete_experiment(eid)
    with pytest.raises(MlflowException) as e:
        client.create_experiment(name)
    assert _code(e) == "RESOURCE_ALREADY_EXISTS"


def test_rename_to_existing_name(client):
    a = unique("ren-a")
    b = unique("ren-b")
    client.create_experiment(a)
    eb = client.create_experiment(b)
    with pytest.raises(MlflowException) as e:
        client.rename_experiment(eb, a)
    assert _code(e) in ("RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE", "BAD_REQUEST")
    assert client.get_experiment(eb).name == b


def test_create_run_in_unknown_experiment(client):
    with pytest.raises(MlflowException) as e:
        client.create_run("987654321")
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_create_run_in_deleted_experiment(client):
    eid = client.create_experiment(unique("deleted-exp-run"))
    client.delete_experiment(eid)
    with pytest.raises(MlflowException) as e:
        client.create_run(eid)
    assert _code(e) == "INVALID_PARAMETER_VALUE"


def test_changed_param_value_rejected(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.log_param(rid, "lr", "0.1")
    with pytest.raises(MlflowException) as e:
        client.log_param(rid, "lr", "0.2")
    assert _code(e) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.log_batch(rid, params=[Param("lr", "0.3")])
    assert _code(e) == "INVALID_PARAMETER_VALUE"
    assert client.get_run(rid).data.params == {"lr": "0.1"}


def test_logging_to_deleted_run_rejected(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    client.delete_run(rid)
    for call in (
        lambda: client.log_param(rid, "p", "v"),
        lambda: client.log_metric(rid, "m", 1.0),
        lambda: client.set_tag(rid, "t", "v"),
        lambda: client.log_batch(rid, metrics=[Metric("m", 1.0, 0, 0)]),
    ):
        with pytest.raises(MlflowException) as e:
            call()
        assert _code(e) == "INVALID_PARAMETER_VALUE"
    r = client.get_run(rid)
    assert r.data.params == {} and r.data.metrics == {}
    assert "t" not in r.data.tags


def test_delete_missing_tag(client, experiment_id):
    rid = client.create_run(experiment_id).info.run_id
    with pytest.raises(MlflowException) as e:
        client.delete_tag(rid, "never-set")
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.parametrize(
    "flt",
    [
        "metrics.x >> 1",
        "metrics.x > 1 OR params.p = 'a'",
        "params.p = 'a' OR params.p = 'b'",
        "foo.bar = 'x'",
        "params.p > 'a'",
        "metrics.x = 'abc'",
        "tags.t LIKE",
        "attributes.status > 'FINISHED'",
        "attributes.nonexistent = 'x'",
        "metrics.x IS NULL",
        "params.p = a",
    ],
)
def test_invalid_search_runs_filter(client, experiment_id, flt):
    with pytest.raises(MlflowException) as e:
        client.search_runs([experiment_id], filter_string=flt)
    assert _code(e) == "INVALID_PARAMETER_VALUE", flt


@pytest.mark.parametrize("order_by", ["metrics.x SIDEWAYS", "foo.bar ASC", "params.p ASC DESC"])
def test_invalid_search_runs_order_by(client, experiment_id, order_by):
    with pytest.raises(MlflowException) as e:
        client.search_runs([experiment_id], order_by=[order_by])
    assert _code(e) == "INVALID_PARAMETER_VALUE"


def test_invalid_search_experiments_filter(client):
    for flt in ["name = 'a' OR name = 'b'", "name >> 'x'", "metrics.x > 1"]:
        with pytest.raises(MlflowException) as e:
            client.search_experiments(filter_string=flt)
        assert _code(e) == "INVALID_PARAMETER_VALUE", flt


def test_fluent_search_runs_invalid_filter(tracking, experiment_id):
    with pytest.raises(MlflowException) as e:
        mlflow.search_runs([experiment_id], filter_string="metrics.x > 1 OR metrics.y < 2")
    assert _code(e) == "INVALID_PARAMETER_VALUE"


# --------------------------------------------------------------------------------------
# Raw HTTP bad input
# --------------------------------------------------------------------------------------


@pytest.fixture
def api(tracking):
    return tracking.url + "/api/2.0/mlflow"


@pytest.fixture
def run_id(client, experiment_id):
    return client.create_run(experiment_id).info.run_id


JSON_HDR = {"Content-Type": "application/json"}


def test_malformed_json(api):
    for body in ["{not json", '{"name": ', "", "[1, 2, 3]", '"just a string"', "null"]:
        r = requests.post(f"{api}/experiments/create", data=body, headers=JSON_HDR)
        assert_json_error(r, 400)


def test_malformed_json_on_logging_endpoints(api, run_id):
    for ep in ["runs/log-metric", "runs/log-parameter", "runs/log-batch", "runs/set-tag", "runs/update"]:
        r = requests.post(f"{api}/{ep}", data='{"run_id": "' + run_id + '", ', headers=JSON_HDR)
        assert_json_error(r, 400)


def test_wrong_types(api, run_id, experiment_id):
    cases = [
        ("runs/create", {"experiment_id": {"a": 1}}),
        ("runs/create", {"experiment_id": [experiment_id]}),
        ("runs/search", {"experiment_ids": [experiment_id], "max_results": "abc"}),
        ("runs/search", {"experiment_ids": experiment_id, "max_results": {"x": 1}}),
        ("runs/search", {"experiment_ids": [experiment_id], "filter": 5}),
        ("experiments/create", {"name": {"nested": "obj"}}),
        ("experiments/create", {"name": ["list"]}),
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": "not-a-number", "timestamp": 1}),
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": "yesterday"}),
        ("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": "x"}),
        ("runs/log-parameter", {"run_id": run_id, "key": 123, "value": {"a": 1}}),
        ("runs/log-batch", {"run_id": run_id, "metrics": {"key": "m"}}),
        ("runs/log-batch", {"run_id": run_id, "params": "p=1"}),
        ("runs/update", {"run_id": run_id, "end_time": "soon"}),
        ("experiments/search", {"max_results": "abc"}),
    ]
    for ep, body in cases:
        r = requests.post(f"{api}/{ep}", json=body)
        assert_json_error(r, 400)
    r = requests.get(f"{api}/experiments/search", params={"max_results": "abc"})
    assert_json_error(r, 400)
    # the run is untouched by the rejected writes
    r = requests.get(f"{api}/runs/get", params={"run_id": run_id})
    assert r.status_code == 200
    data = r.json()["run"].get("data", {})
    assert not data.get("metrics") and not data.get("params")
    assert r.json()["run"]["info"]["status"] == "RUNNING"


def test_missing_required_fields(api, run_id):
    cases = [
        ("experiments/create", {}),
        ("experiments/create", {"name": ""}),
        ("runs/log-metric", {"run_id": run_id, "value": 1.0, "timestamp": 1}),
        ("runs/log-metric", {"run_id": run_id, "key": "m", "timestamp": 1}),
        ("runs/log-metric", {"key": "m", "value": 1.0, "timestamp": 1}),
        ("runs/log-parameter", {"run_id": run_id, "value": "v"}),
        ("runs/set-tag", {"run_id": run_id, "value": "v"}),
        ("runs/delete", {}),
        ("experiments/delete", {}),
        ("experiments/update", {"new_name": "x"}),
    ]
    for ep, body in cases:
        r = requests.post(f"{api}/{ep}", json=body)
        assert_json_error(r, 400)
    for ep in ["runs/get", "experiments/get", "experiments/get-by-name", "metrics/get-history"]:
        r = requests.get(f"{api}/{ep}")
        assert_json_error(r, 400)


def test_unknown_ids_over_http(api):
    r = requests.get(f"{api}/runs/get", params={"run_id": UNKNOWN_RUN_ID})
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.get(f"{api}/experiments/get", params={"experiment_id": "987654321"})
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": unique("nope")})
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.post(f"{api}/runs/log-metric", json={"run_id": UNKNOWN_RUN_ID, "key": "m", "value": 1, "timestamp": 1})
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    # ids that are not even well-formed: rejected, never a 5xx
    for bad in ["not a number", "-1", "1; DROP TABLE runs", "9" * 40]:
        r = requests.get(f"{api}/experiments/get", params={"experiment_id": bad})
        assert_json_error(r, (400, 404))
    for bad in ["../../etc/passwd", "x" * 300, "'; --", "%00"]:
        r = requests.get(f"{api}/runs/get", params={"run_id": bad})
        assert_json_error(r, (400, 404))


def test_key_length_limits(api, run_id):
    long_key = "k" * 251
    cases = [
        ("runs/log-parameter", {"run_id": run_id, "key": long_key, "value": "v"}),
        ("runs/log-metric", {"run_id": run_id, "key": long_key, "value": 1.0, "timestamp": 1}),
        ("runs/set-tag", {"run_id": run_id, "key": long_key, "value": "v"}),
        (
            "runs/log-batch",
            {"run_id": run_id, "params": [{"key": long_key, "value": "v"}]},
        ),
    ]
    for ep, body in cases:
        r = requests.post(f"{api}/{ep}", json=body)
        assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    # exactly 250 is fine
    ok_key = "k" * 250
    r = requests.post(f"{api}/runs/log-parameter", json={"run_id": run_id, "key": ok_key, "value": "v"})
    assert r.status_code == 200, r.text
    run = requests.get(f"{api}/runs/get", params={"run_id": run_id}).json()["run"]
    keys = [p["key"] for p in run["data"].get("params", [])]
    assert keys == [ok_key]


def _stored_value(api, run_id, kind, key):
    run = requests.get(f"{api}/runs/get", params={"run_id": run_id}).json()["run"]
    for item in run["data"].get(kind, []):
        if item["key"] == key:
            return item["value"]
    return None


@pytest.mark.parametrize(
    "ep, kind, limit",
    [("runs/log-parameter", "params", 6000), ("runs/set-tag", "tags", 8000)],
)
def test_value_length_limits(api, run_id, ep, kind, limit):
    # at the limit: stored verbatim
    r = requests.post(f"{api}/{ep}", json={"run_id": run_id, "key": "at_limit", "value": "v" * limit})
    assert r.status_code == 200, r.text
    assert _stored_value(api, run_id, kind, "at_limit") == "v" * limit
    # over the limit: MLflow 3.17 truncates to the limit by default
    # (MLFLOW_TRUNCATE_LONG_VALUES); older servers reject with INVALID_PARAMETER_VALUE.
    # Either is compatible; storing more than the limit, or a 5xx, is not.
    r = requests.post(f"{api}/{ep}", json={"run_id": run_id, "key": "over", "value": "w" * (limit + 1)})
    if r.status_code == 200:
        assert _stored_value(api, run_id, kind, "over") == "w" * limit
    else:
        assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
        assert _stored_value(api, run_id, kind, "over") is None


def test_experiment_tag_value_limit(api, experiment_id):
    r = requests.post(
        f"{api}/experiments/set-experiment-tag",
        json={"experiment_id": experiment_id, "key": "big", "value": "x" * 20001},
    )
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = requests.post(
        f"{api}/experiments/set-experiment-tag",
        json={"experiment_id": experiment_id, "key": "k" * 251, "value": "v"},
    )
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_log_batch_entity_limits(api, run_id):
    too_many_metrics = [{"key": f"m{i}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(1001)]
    r = requests.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": too_many_metrics})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    too_many_params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    r = requests.post(f"{api}/runs/log-batch", json={"run_id": run_id, "params": too_many_params})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    too_many_tags = [{"key": f"t{i}", "value": "v"} for i in range(101)]
    r = requests.post(f"{api}/runs/log-batch", json={"run_id": run_id, "tags": too_many_tags})
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    # 950 metrics + 51 params = 1001 entities in total
    mixed = {
        "run_id": run_id,
        "metrics": too_many_metrics[:950],
        "params": too_many_params[:51],
    }
    r = requests.post(f"{api}/runs/log-batch", json=mixed)
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    # nothing of the rejected batches was stored
    run = requests.get(f"{api}/runs/get", params={"run_id": run_id}).json()["run"]
    assert not run["data"].get("metrics") and not run["data"].get("params")
    assert not [t for t in run["data"].get("tags", []) if t["key"].startswith("t")]


def test_log_batch_duplicate_param_in_one_request_conflicting(api, run_id):
    body = {
        "run_id": run_id,
        "params": [{"key": "dup", "value": "a"}, {"key": "dup", "value": "b"}],
    }
    r = requests.post(f"{api}/runs/log-batch", json=body)
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")


def _raw_post(host, port, path, body: bytes, headers=None, timeout=60):
    """POST with a raw socket; the body is sent from a second thread while we read, so an
    early response (413 before the body is consumed) is still seen."""
    sock = socket.create_connection((host, port), timeout=timeout)
    hdrs = {
        "Host": f"{host}:{port}",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    hdrs.update(headers or {})
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"

    def send():
        try:
            sock.sendall(head.encode())
            view = memoryview(body)
            for i in range(0, len(body), 1 << 16):
                sock.sendall(view[i : i + (1 << 16)])
        except OSError:
            pass  # server stopped reading: fine, it may have answered already

    t = threading.Thread(target=send, daemon=True)
    t.start()
    chunks = []
    try:
        while True:
            c = sock.recv(65536)
            if not c:
                break
            chunks.append(c)
            data = b"".join(chunks)
            if b"\r\n\r\n" in data:
                hdr, _, rest = data.partition(b"\r\n\r\n")
                cl = [
                    ln.split(b":", 1)[1].strip()
                    for ln in hdr.split(b"\r\n")
                    if ln.lower().startswith(b"content-length:")
                ]
                if cl and len(rest) >= int(cl[0]):
                    break
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    t.join(timeout=timeout)
    data = b"".join(chunks)
    assert data, "connection closed without any HTTP response"
    hdr, _, rest = data.partition(b"\r\n\r\n")
    status = int(hdr.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in hdr.lower():
        rest = _dechunk(rest)
    return RawResponse(status, rest)


def _dechunk(b: bytes) -> bytes:
    out = b""
    while b:
        size_line, _, b = b.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += b[:size]
        b = b[size + 2 :]
    return out


def test_oversized_body_rejected(tracking, run_id):
    # ~20 MiB JSON (a 20 MiB param value: invalid on length too, so 413 or 400 are both right)
    body = json.dumps({"run_id": run_id, "key": "huge", "value": "x" * (20 * 1024 * 1024)}).encode()
    r = _raw_post("127.0.0.1", tracking.port, "/api/2.0/mlflow/runs/log-parameter", body)
    assert_json_error(r, (400, 413))
    # the server is still healthy and nothing was stored
    assert requests.get(tracking.url + "/health").status_code == 200
    run = requests.get(tracking.url + "/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
    assert not [p for p in run["run"]["data"].get("params", []) if p["key"] == "huge"]


def test_oversized_log_batch_body(tracking, run_id):
    # A structurally valid batch (the pad field is unknown, so ignored) of ~48 MiB: far
    # above anything the client sends (a dataset profile may reach 16 MiB), so the server's
    # body limit must refuse it before parsing.
    metrics = [
        {"key": f"m{i}", "value": 1.0, "timestamp": 1, "step": 0, "pad": "y" * (48 * 1024)}
        for i in range(1000)
    ]
    body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
    assert len(body) > 46 * 1024 * 1024
    r = _raw_post("127.0.0.1", tracking.port, "/api/2.0/mlflow/runs/log-batch", body)
    assert_json_error(r, (400, 413))
    assert requests.get(tracking.url + "/health").status_code == 200


def test_unknown_endpoints(tracking):
    base = tracking.url
    for method, path in [
        ("GET", "/api/2.0/mlflow/does-not-exist"),
        ("POST", "/api/2.0/mlflow/does-not-exist"),
        ("GET", "/api/2.0/mlflow/runs/does-not-exist"),
        ("POST", "/api/2.0/mlflow/experiments/frobnicate"),
        ("GET", "/api/2.0/mlflow/"),
        ("GET", "/api/9.9/mlflow/runs/get"),
    ]:
        r = requests.request(method, base + path, json={} if method == "POST" else None)
        assert_json_error(r, 404, "ENDPOINT_NOT_FOUND")


def test_wrong_method_on_known_route(tracking):
    base = tracking.url + "/api/2.0/mlflow"
    for method, path in [
        ("GET", "/runs/create"),
        ("GET", "/runs/log-batch"),
        ("GET", "/experiments/create"),
        ("DELETE", "/runs/get"),
        ("PUT", "/runs/update"),
    ]:
        r = requests.request(method, base + path)
        assert_json_error(r, (404, 405))


def test_errors_do_not_leak_across_requests(client, experiment_id, api):
    """After a burst of bad requests the server still serves good ones."""
    for _ in range(20):
        requests.post(f"{api}/runs/log-batch", data="{{{{", headers=JSON_HDR)
    rid = client.create_run(experiment_id).info.run_id
    client.log_metric(rid, "ok", 1.0)
    assert client.get_run(rid).data.metrics == {"ok": 1.0}


def test_run_id_uuid_aliases(api, experiment_id):
    r = requests.post(f"{api}/runs/create", json={"experiment_id": experiment_id})
    assert r.status_code == 200, r.text
    info = r.json()["run"]["info"]
    rid = info["run_id"]
    assert info["run_uuid"] == rid
    assert info["lifecycle_stage"] == "active"
    assert isinstance(info["experiment_id"], str)
    # run_uuid alone is accepted
    r = requests.post(
        f"{api}/runs/log-parameter", json={"run_uuid": rid, "key": "via_uuid", "value": "1"}
    )
    assert r.status_code == 200, r.text
    r = requests.get(f"{api}/runs/get", params={"run_uuid": rid})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["data"]["params"] == [{"key": "via_uuid", "value": "1"}]


def test_non_finite_metric_wire_format(api, run_id):
    body = {
        "run_id": run_id,
        "metrics": [
            {"key": "nan", "value": "NaN", "timestamp": 1, "step": 0},
            {"key": "pinf", "value": "Infinity", "timestamp": 1, "step": 0},
            {"key": "ninf", "value": "-Infinity", "timestamp": 1, "step": 0},
        ],
    }
    r = requests.post(f"{api}/runs/log-batch", json=body)
    assert r.status_code == 200, r.text
    raw = requests.get(f"{api}/runs/get", params={"run_id": run_id}).text
    metrics = {m["key"]: m["value"] for m in json.loads(raw)["run"]["data"]["metrics"]}
    # proto3 JSON spelling; the reference server stores +-inf as +-DBL_MAX, also accepted
    assert metrics["nan"] == "NaN"
    assert metrics["pinf"] in ("Infinity", 1.7976931348623157e308)
    assert metrics["ninf"] in ("-Infinity", -1.7976931348623157e308)


def test_uuid_shaped_but_unknown_experiment_in_search(api):
    r = requests.post(f"{api}/runs/search", json={"experiment_ids": [str(uuid.uuid4().int)[:12]]})
    # searching an experiment that does not exist returns no runs (MLflow) — never a 5xx
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code == 200:
        assert r.json().get("runs", []) == []
    else:
        assert_json_error(r)


@pytest.mark.parametrize("ep", ["runs/log-parameter", "runs/log-metric", "runs/set-tag"])
def test_key_shapes(api, run_id, ep):
    def body(key):
        if ep == "runs/log-metric":
            return {"run_id": run_id, "key": key, "value": 1.0, "timestamp": 1}
        return {"run_id": run_id, "key": key, "value": "v"}

    for bad in ["../x", "a/../b", "/abs", "a//b", "./a", "bad\nkey", "semi;colon", "q?uery", "a\\b"]:
        r = requests.post(f"{api}/{ep}", json=body(bad))
        assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    for good in ["train/loss", "with space", "ns:key", "dots.and-dashes_1", "üñí"]:
        r = requests.post(f"{api}/{ep}", json=body(good))
        assert r.status_code == 200, (good, r.text)


def test_search_runs_max_results_limit(api, experiment_id):
    r = requests.post(
        f"{api}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 50001}
    )
    assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = requests.post(
        f"{api}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 50000}
    )
    assert r.status_code == 200, r.text


def test_experiment_name_length_limit(client):
    with pytest.raises(MlflowException) as e:
        client.create_experiment("n" * 501)
    assert _code(e) == "INVALID_PARAMETER_VALUE"
    eid = client.create_experiment("n" * 480 + uuid.uuid4().hex[:20])
    assert len(client.get_experiment(eid).name) == 500
