"""Serving parity: every zoo model through every protocol, in both modes.

Server mode: one `slipway server` with a deployment per zoo model (alias champion -> v1),
reached at /serving/{d}/invocations, /v2/models/{d}, /v1/models/{d}. Standalone mode:
one `slipway serve models:/NAME@champion --tracking-uri <server>` per zoo model.

Expected values always come from Python onnxruntime on the same float32 inputs; MLflow
response shapes from mlflow.pyfunc.scoring_server run in-process on the same body (see
serving_helpers.expected_mlflow for the cases where mlflow itself cannot answer).
"""

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import requests
import serving_helpers as sh
from serving_helpers import DEPLOYMENTS, ZOO_KEYS

MODES = ["server", "standalone"]


class Target:
    """Where one zoo model is served in one mode."""

    def __init__(self, mode, zm, base, v2_name, invocations, ping):
        self.mode = mode
        self.zm = zm
        self.base = base
        self.v2_name = v2_name
        self.invocations = invocations
        self.ping = ping

    @property
    def host_port(self):
        return self.base.replace("http://", "")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-protocols")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    zoo = sh.build_zoo()
    sh.register_zoo(zoo, srv, root / "downloads", prefix="proto")
    refs = {k: sh.OrtRef(zm) for k, zm in zoo.items()}
    deployments = {}
    for key, zm in zoo.items():
        d = "d-" + key.replace("_", "-")
        body = sh.create_deployment(srv.url, {"name": d, "model": zm.name, "alias": "champion"})
        assert body["deployment"]["name"] == d, body
        deployments[key] = d
    for d in deployments.values():
        sh.wait_deployment_ready(srv.url, d)
    standalone = {}
    state = type("Env", (), {})()
    state.srv, state.zoo, state.refs, state.deployments, state.standalone = srv, zoo, refs, deployments, standalone
    state.root = root
    state.expected_cache = {}
    yield state
    for s in standalone.values():
        s.stop()
    srv.stop()


def _target(env, key, mode):
    zm = env.zoo[key]
    if mode == "server":
        d = env.deployments[key]
        return Target(mode, zm, env.srv.url, d, f"{env.srv.url}/serving/{d}/invocations", f"{env.srv.url}/serving/{d}/ping")
    s = env.standalone.get(key)
    if s is None or not s.alive():
        s = sh.StandaloneServe(f"models:/{zm.name}@champion", env.srv.url, env.root / "serve-logs", name=key).start()
        env.standalone[key] = s
    return Target(mode, zm, s.url, zm.name, f"{s.url}/invocations", f"{s.url}/ping")


def _expected(env, key, fmt):
    k = (key, fmt)
    if k not in env.expected_cache:
        env.expected_cache[k] = sh.expected_mlflow(env.zoo[key], fmt, env.refs[key])
    return env.expected_cache[k]


def _post_mlflow(t, fmt, request_id=None):
    body, ctype = sh.mlflow_body(t.zm, fmt)
    headers = {"Content-Type": ctype}
    if request_id:
        headers["X-Request-Id"] = request_id
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(t.invocations, data=data.encode(), headers=headers, timeout=60)


def _check_serving_headers(t, r, request_id=None, version="1"):
    if request_id is not None:
        assert r.headers.get("X-Request-Id") == request_id, dict(r.headers)
    else:
        assert r.headers.get("X-Request-Id"), f"no X-Request-Id: {dict(r.headers)}"
    assert r.headers.get("X-Slipway-Model-Version") == version, dict(r.headers)
    if t.mode == "server":
        assert r.headers.get("X-Slipway-Deployment") == t.v2_name, dict(r.headers)


# --------------------------------------------------------------------------------------
# References work without a server (sanity of the oracle itself)
# --------------------------------------------------------------------------------------


def test_zoo_exports_run_in_onnxruntime(env):
    for key, zm in env.zoo.items():
        ref = env.refs[key]
        assert ref.n == sh.N_ROWS
        if zm.classifier:
            labels = np.asarray(ref.raw[ref.first_output()])
            # predictions of the exported model equal scikit-learn's label set
            assert set(labels.tolist()) <= set(np.asarray(zm.train_output).tolist()), key
    ext = env.zoo["external_data"].local_dir
    assert any(p.suffix == ".data" or p.name not in sh.STANDARD_FILES for p in ext.iterdir())


# --------------------------------------------------------------------------------------
# MLflow scoring protocol
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sh.MLFLOW_FORMATS)
@pytest.mark.parametrize("key", ZOO_KEYS)
@pytest.mark.parametrize("mode", MODES)
def test_mlflow_format(env, mode, key, fmt):
    t = _target(env, key, mode)
    want, source = _expected(env, key, fmt)
    rid = f"req-{uuid.uuid4().hex[:16]}"
    r = _post_mlflow(t, fmt, request_id=rid)
    assert r.status_code == 200, f"{mode}/{key}/{fmt} (shape from {source}): {r.status_code} {r.text[:800]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    _check_serving_headers(t, r, request_id=rid)
    sh.assert_json_close(r.json(), want, path=f"{mode}/{key}/{fmt}[{source}]")


@pytest.mark.parametrize("mode", MODES)
def test_mlflow_params_ignored_and_charset(env, mode):
    t = _target(env, "logreg", mode)
    body, _ = sh.mlflow_body(t.zm, "inputs")
    body["params"] = {"temperature": 0.5}
    r = requests.post(
        t.invocations, data=json.dumps(body), headers={"Content-Type": "application/json; charset=utf-8"}, timeout=60
    )
    assert r.status_code == 200, r.text[:500]
    want, _ = _expected(env, "logreg", "inputs")
    sh.assert_json_close(r.json(), want)


@pytest.mark.parametrize("mode", MODES)
def test_generated_request_id(env, mode):
    t = _target(env, "linear_regression", mode)
    ids = set()
    for _ in range(3):
        r = _post_mlflow(t, "inputs")
        assert r.status_code == 200, r.text[:500]
        _check_serving_headers(t, r)
        ids.add(r.headers["X-Request-Id"])
    assert len(ids) == 3, f"generated request ids are not unique: {ids}"


# --------------------------------------------------------------------------------------
# Open Inference Protocol V2
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("key", ZOO_KEYS)
@pytest.mark.parametrize("mode", MODES)
def test_v2_tritonclient(env, mode, key, binary):
    import tritonclient.http as httpclient

    t = _target(env, key, mode)
    ref = env.refs[key]
    client = httpclient.InferenceServerClient(url=t.host_port, network_timeout=60)
    try:
        inputs = sh.triton_inputs(t.zm, binary=binary)
        outputs = None
        if not binary:
            outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ref.output_names]
        result = client.infer(t.v2_name, inputs, outputs=outputs, request_id="tc-1")
        sh.check_triton_result(result, ref)
        resp = result.get_response()
        assert resp.get("model_name") == t.v2_name, resp
        assert resp.get("id") == "tc-1", resp
    finally:
        client.close()


@pytest.mark.parametrize("key", ZOO_KEYS)
@pytest.mark.parametrize("mode", MODES)
def test_v2_raw_json(env, mode, key):
    t = _target(env, key, mode)
    ref = env.refs[key]
    rid = f"v2-{uuid.uuid4().hex[:12]}"
    body = {"id": "my-id-7", "inputs": sh.v2_inputs_json(t.zm)}
    r = requests.post(f"{t.base}/v2/models/{t.v2_name}/infer", json=body, headers={"X-Request-Id": rid}, timeout=60)
    assert r.status_code == 200, r.text[:800]
    _check_serving_headers(t, r, request_id=rid)
    out = r.json()
    assert out.get("id") == "my-id-7", out
    sh.check_v2_json_response(out, ref, model_name=t.v2_name)

    # versioned route answers the same
    r2 = requests.post(f"{t.base}/v2/models/{t.v2_name}/versions/1/infer", json=body, timeout=60)
    assert r2.status_code == 200, r2.text[:800]
    sh.check_v2_json_response(r2.json(), ref)

    # nested (non-flat) data is accepted too
    nested = {"inputs": [dict(i, data=np.asarray(i["data"], dtype=object).reshape(i["shape"]).tolist()) for i in body["inputs"]]}
    r3 = requests.post(f"{t.base}/v2/models/{t.v2_name}/infer", json=nested, timeout=60)
    assert r3.status_code == 200, r3.text[:800]
    sh.check_v2_json_response(r3.json(), ref)


@pytest.mark.parametrize("mode", MODES)
def test_v2_requested_output_subset(env, mode):
    t = _target(env, "logreg", mode)
    ref = env.refs["logreg"]
    body = {"inputs": sh.v2_inputs_json(t.zm), "outputs": [{"name": "output_label"}]}
    r = requests.post(f"{t.base}/v2/models/{t.v2_name}/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text[:800]
    outs = r.json()["outputs"]
    assert [o["name"] for o in outs] == ["output_label"], outs
    sh.assert_array_close(np.asarray(outs[0]["data"]), ref.raw["output_label"], "output_label")


@pytest.mark.parametrize("key", ZOO_KEYS)
@pytest.mark.parametrize("mode", MODES)
def test_v2_metadata_and_ready(env, mode, key):
    t = _target(env, key, mode)
    ref = env.refs[key]
    sess = sh.ort_session(t.zm)
    r = requests.get(f"{t.base}/v2/models/{t.v2_name}", timeout=30)
    assert r.status_code == 200, r.text[:500]
    md = r.json()
    assert md["name"] == t.v2_name, md
    assert md["platform"] == "onnxruntime_onnx", md
    assert "1" in [str(v) for v in md["versions"]], md
    want_inputs = []
    for i in sess.get_inputs():
        dt = {"tensor(float)": "FP32", "tensor(string)": "BYTES", "tensor(int64)": "INT64"}[i.type]
        want_inputs.append((i.name, dt, [-1 if not isinstance(d, int) else d for d in i.shape]))
    got_inputs = [(i["name"], i["datatype"], list(i["shape"])) for i in md["inputs"]]
    assert got_inputs == want_inputs, (got_inputs, want_inputs)
    want_out = sh.expected_v2_outputs(ref)
    got_out = {o["name"]: o for o in md["outputs"]}
    assert set(got_out) == set(want_out), (sorted(got_out), sorted(want_out))
    for name, (dt, arr, classes) in want_out.items():
        assert got_out[name]["datatype"] == dt, (name, got_out[name])
        shape = list(got_out[name]["shape"])
        assert shape[0] == -1 and shape[1:] == list(arr.shape[1:]), (name, shape, arr.shape)

    r = requests.get(f"{t.base}/v2/models/{t.v2_name}/versions/1", timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["name"] == t.v2_name
    for path in (f"/v2/models/{t.v2_name}/ready", f"/v2/models/{t.v2_name}/versions/1/ready"):
        r = requests.get(t.base + path, timeout=30)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.json() == {"name": t.v2_name, "ready": True} or (
            r.json().get("name") == t.v2_name and r.json().get("ready") is True
        ), r.json()


@pytest.mark.parametrize("mode", MODES)
def test_v2_server_endpoints(env, mode):
    import tritonclient.http as httpclient

    t = _target(env, "logreg", mode)
    r = requests.get(t.base + "/v2", timeout=30)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == "slipway" and isinstance(meta["version"], str) and meta["version"], meta
    assert "binary_tensor_data" in meta["extensions"], meta
    for path in ("/v2/health/live", "/v2/health/ready"):
        r = requests.get(t.base + path, timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text)
    client = httpclient.InferenceServerClient(url=t.host_port)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(t.v2_name)
        md = client.get_model_metadata(t.v2_name)
        assert md["name"] == t.v2_name
        assert client.get_server_metadata()["name"] == "slipway"
    finally:
        client.close()


# --------------------------------------------------------------------------------------
# KServe V1
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ZOO_KEYS)
@pytest.mark.parametrize("mode", MODES)
def test_v1_predict(env, mode, key):
    t = _target(env, key, mode)
    ref = env.refs[key]
    rid = f"v1-{uuid.uuid4().hex[:12]}"
    r = requests.post(
        f"{t.base}/v1/models/{t.v2_name}:predict",
        json={"instances": sh.v1_instances(t.zm)},
        headers={"X-Request-Id": rid},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:800]
    _check_serving_headers(t, r, request_id=rid)
    sh.assert_json_close(r.json(), {"predictions": ref.v1_predictions()}, path=f"v1/{mode}/{key}")

    r = requests.post(f"{t.base}/v1/models/{t.v2_name}:predict", json={"inputs": sh.v1_instances(t.zm)}, timeout=60)
    assert r.status_code == 200, r.text[:800]
    sh.assert_json_close(r.json(), {"predictions": ref.v1_predictions()}, path=f"v1-inputs/{mode}/{key}")


@pytest.mark.parametrize("mode", MODES)
def test_v1_models_list_and_status(env, mode):
    t = _target(env, "pipeline", mode)
    r = requests.get(t.base + "/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    assert t.v2_name in models, models
    if mode == "server":
        assert set(env.deployments.values()) <= set(models), models
    else:
        assert models == [t.v2_name], models
    r = requests.get(f"{t.base}/v1/models/{t.v2_name}", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json().get("name") == t.v2_name and r.json().get("ready") is True, r.json()


# --------------------------------------------------------------------------------------
# Health, version, ping
# --------------------------------------------------------------------------------------


def test_standalone_health_ping_version(env):
    t = _target(env, "mlp", "standalone")
    for path in ("/ping", "/health"):
        r = requests.get(t.base + path, timeout=30)
        assert r.status_code == 200, (path, r.status_code, r.text)
    r = requests.get(t.base + "/version", timeout=30)
    assert r.status_code == 200, r.text
    assert r.text.strip(), "empty /version"
    assert "serve listening" in env.standalone["mlp"].stderr_text(), env.standalone["mlp"].stderr_text()


def test_server_ping_and_health(env):
    for d in env.deployments.values():
        r = requests.get(f"{env.srv.url}/serving/{d}/ping", timeout=30)
        assert r.status_code == 200, (d, r.status_code, r.text)
    assert requests.get(env.srv.url + "/health", timeout=30).status_code == 200
    r = requests.get(f"{env.srv.url}/api/v1/deployments", timeout=30)
    assert r.status_code == 200
    names = {d["name"] for d in r.json()["deployments"]}
    assert set(env.deployments.values()) <= names, names


@pytest.mark.parametrize("mode", MODES)
def test_metrics_count_requests(env, mode):
    t = _target(env, "linear_regression", mode)
    before = sh.get_metrics(t.base)
    for _ in range(3):
        assert _post_mlflow(t, "dataframe_split").status_code == 200
    after = sh.get_metrics(t.base)
    labels = {"protocol": "mlflow", "code": "200"}
    if mode == "server":
        labels["deployment"] = t.v2_name
    b = sh.metric_sum(before, "slipway_serving_requests_total", **labels)
    a = sh.metric_sum(after, "slipway_serving_requests_total", **labels)
    assert a - b >= 3, (b, a)
    assert sh.metric_values(after, "slipway_serving_models_loaded"), "no slipway_serving_models_loaded"


def test_registry_model_lazily_served_by_name_in_server_mode(env):
    """Server mode: V2 on a registered model name (no deployment) loads its highest version."""
    zm = env.zoo["linear_regression"]
    ref = env.refs["linear_regression"]
    r = requests.post(f"{env.srv.url}/v2/models/{zm.name}/infer", json={"inputs": sh.v2_inputs_json(zm)}, timeout=60)
    assert r.status_code == 200, r.text[:800]
    sh.check_v2_json_response(r.json(), ref)
    assert r.headers.get("X-Slipway-Model-Version") == "1", dict(r.headers)
    r = requests.post(
        f"{env.srv.url}/v2/models/{zm.name}/versions/champion/infer", json={"inputs": sh.v2_inputs_json(zm)}, timeout=60
    )
    assert r.status_code == 200, r.text[:800]
    sh.check_v2_json_response(r.json(), ref)


def test_deployments_route_listed(env):
    r = requests.get(env.srv.url + DEPLOYMENTS + "/" + env.deployments["logreg"], timeout=30)
    assert r.status_code == 200, r.text
    dep = r.json()["deployment"]
    assert dep["model"] == env.zoo["logreg"].name and dep["alias"] == "champion", dep
    assert dep["status"]["primary"]["ready"] is True and str(dep["status"]["primary"]["version"]) == "1", dep


# --------------------------------------------------------------------------------------
# Column handling parity with mlflow, other model URIs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_column_order_and_extra_columns_like_mlflow(env, mode):
    """Column signature: columns are matched by name (any order), extra columns ignored."""
    t = _target(env, "pipeline", mode)
    zm = t.zm
    rows = sh.rows_of(zm)
    cols = list(reversed(zm.columns)) + ["extra"]
    body = {"dataframe_split": {"columns": cols, "data": [list(reversed(r)) + [123.0] for r in rows]}}
    status, ml = sh.mlflow_reference(zm, body)
    assert status == 200, ml
    want = {"predictions": env.refs["pipeline"].records()}
    sh.assert_json_close(ml, want)  # mlflow does reorder and ignore
    r = requests.post(t.invocations, json=body, timeout=60)
    assert r.status_code == 200, r.text[:500]
    sh.assert_json_close(r.json(), want)


@pytest.mark.parametrize("mode", MODES)
def test_dataframe_split_with_index_and_integers(env, mode):
    """An index is accepted; integral JSON numbers go into float columns as floats."""
    t = _target(env, "rf_regressor", mode)
    Xi = np.round(env.zoo["rf_regressor"].X * 3).astype(np.float32)
    ref = sh.OrtRef(t.zm, X=Xi)
    body = {"dataframe_split": {"index": list(range(10, 10 + len(Xi))), "columns": t.zm.columns, "data": Xi.astype(int).tolist()}}
    status, ml = sh.mlflow_reference(t.zm, body)
    assert status == 200, ml
    want = {"predictions": ref.tensors() if isinstance(ml["predictions"], dict) else ref.records()}
    sh.assert_json_close(ml, want)
    r = requests.post(t.invocations, json=body, timeout=60)
    assert r.status_code == 200, r.text[:500]
    sh.assert_json_close(r.json(), want)


def test_standalone_local_dir_and_version_uri(env):
    zm = env.zoo["logreg"]
    ref = env.refs["logreg"]
    want_inputs, _ = _expected(env, "logreg", "inputs")
    for uri, v2_name in ((str(zm.local_dir), "model"), (f"models:/{zm.name}/1", zm.name)):
        s = sh.StandaloneServe(uri, env.srv.url, env.root / "serve-logs", name="uri").start()
        try:
            body, ctype = sh.mlflow_body(zm, "inputs")
            r = requests.post(f"{s.url}/invocations", json=body, timeout=60)
            assert r.status_code == 200, (uri, r.text[:500])
            sh.assert_json_close(r.json(), want_inputs)
            r = requests.post(f"{s.url}/v2/models/{v2_name}/infer", json={"inputs": sh.v2_inputs_json(zm)}, timeout=60)
            assert r.status_code == 200, (uri, r.text[:500])
            sh.check_v2_json_response(r.json(), ref, model_name=v2_name)
            r = requests.post(f"{s.url}/v2/models/some-other-name/infer", json={"inputs": sh.v2_inputs_json(zm)}, timeout=60)
            assert r.status_code == 404, (uri, r.status_code, r.text[:300])
        finally:
            s.stop()


# --------------------------------------------------------------------------------------
# Batching: concurrent requests are merged, and every caller gets its own rows back
# --------------------------------------------------------------------------------------


def _batch_hist(text, model):
    le1 = sum(
        v
        for n, l, v in sh.parse_metrics(text)
        if n == "slipway_serving_batch_size_bucket" and l.get("model") == model and l.get("le") == "1"
    )
    count = sh.metric_sum(text, "slipway_serving_batch_size_count", model=model)
    total = sh.metric_sum(text, "slipway_serving_batch_size_sum", model=model)
    return le1, count, total


@pytest.mark.parametrize("key", ["random_forest", "coltrans"])
def test_concurrent_requests_get_their_own_rows(env, key):
    from concurrent.futures import ThreadPoolExecutor

    zm = env.zoo[key]
    d = "batch-" + key.replace("_", "-")
    r = requests.post(
        env.srv.url + DEPLOYMENTS,
        json={"name": d, "model": zm.name, "alias": "champion", "max_wait_us": 5000, "max_batch_rows": 64},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    sh.wait_deployment_ready(env.srv.url, d)
    rng = np.random.default_rng(123)
    n_req = 240
    if key == "coltrans":
        pool = pd.concat([zm.X] * 30, ignore_index=True)
        pool["num0"] = rng.normal(size=len(pool)).astype(np.float32)
        pool["num1"] = rng.normal(size=len(pool)).astype(np.float32)
    else:
        pool = rng.normal(size=(200, sh.N_FEATURES)).astype(np.float32)
    sizes = [1 if i % 2 == 0 else int(rng.integers(1, 6)) for i in range(n_req)]
    starts = [int(rng.integers(0, len(pool) - 6)) for _ in range(n_req)]
    sess = sh.ort_session(zm)

    def sub(i):
        if key == "coltrans":
            return pool.iloc[starts[i] : starts[i] + sizes[i]].reset_index(drop=True)
        return pool[starts[i] : starts[i] + sizes[i]]

    before = _batch_hist(sh.get_metrics(env.srv.url), zm.name)

    def one(i):
        Xi = sub(i)
        fmt = ["dataframe_split", "inputs", "v2"][i % 3]
        if fmt == "v2":
            r = requests.post(f"{env.srv.url}/v2/models/{d}/infer", json={"inputs": sh.v2_inputs_json(zm, Xi)}, timeout=60)
        else:
            body, ctype = sh.mlflow_body(zm, fmt, Xi)
            r = requests.post(f"{env.srv.url}/serving/{d}/invocations", json=body, timeout=60)
        return i, fmt, Xi, r

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(n_req)))
    for i, fmt, Xi, r in results:
        assert r.status_code == 200, (i, fmt, r.text[:300])
        ref = sh.OrtRef(zm, X=Xi, sess=sess)
        if fmt == "v2":
            sh.check_v2_json_response(r.json(), ref)
        else:
            preds = r.json()["predictions"]
            want = ref.records() if isinstance(preds, list) else ref.tensors()
            sh.assert_json_close(r.json(), {"predictions": want}, path=f"req{i}/{fmt}")
    after = _batch_hist(sh.get_metrics(env.srv.url), zm.name)
    batches = after[1] - before[1]
    rows = after[2] - before[2]
    assert rows == sum(sizes), (rows, sum(sizes))
    assert batches < n_req, f"no two requests were ever batched together ({batches} batches for {n_req} requests)"
