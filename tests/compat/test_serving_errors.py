"""Serving bad input: 400 naming the input or column, 413, 415, 404; never a 5xx, and the
server keeps answering afterwards. Non-ONNX flavors and bad deployment specs are refused.
"""

import json
import struct

import mlflow
import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import SlipwayServer, assert_json_error, unique
from serving_helpers import DEPLOYMENTS

MAX_BODY = 65536
MODES = ["server", "standalone"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-errors")
    srv = sh.ServingServer(root / "data", root / "logs", ["--serving-max-body-bytes", str(MAX_BODY)])
    srv.start()
    zoo = sh.build_zoo(only={"logreg", "coltrans", "pipeline"})
    sh.register_zoo(zoo, srv, root / "downloads", prefix="err")
    deps = {}
    for key, zm in zoo.items():
        d = "err-" + key
        sh.create_deployment(srv.url, {"name": d, "model": zm.name, "alias": "champion"})
        deps[key] = d
    for d in deps.values():
        sh.wait_deployment_ready(srv.url, d)
    # a pickled scikit-learn model (sklearn + python_function flavors, no onnx)
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(5).normal(size=(30, 4)).astype(np.float32)
    sk_name = unique("err-sklearn")
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)),
            name="model",
            registered_model_name=sk_name,
            pip_requirements=["scikit-learn"],
        )
    mlflow.MlflowClient(tracking_uri=srv.url).set_registered_model_alias(sk_name, "champion", "1")
    standalone = {}
    for key, zm in zoo.items():
        standalone[key] = sh.StandaloneServe(
            f"models:/{zm.name}@champion", srv.url, root / "serve-logs", ["--max-body-bytes", str(MAX_BODY)], name=key
        ).start()
    state = type("Env", (), {})()
    state.srv, state.zoo, state.deps, state.standalone, state.sk_name = srv, zoo, deps, standalone, sk_name
    state.refs = {k: sh.OrtRef(zm) for k, zm in zoo.items()}
    yield state
    for s in standalone.values():
        s.stop()
    srv.stop()


def _base(env, mode, key):
    return env.srv.url if mode == "server" else env.standalone[key].url


def _inv(env, mode, key):
    if mode == "server":
        return f"{env.srv.url}/serving/{env.deps[key]}/invocations"
    return f"{env.standalone[key].url}/invocations"


def _v2_name(env, mode, key):
    return env.deps[key] if mode == "server" else env.zoo[key].name


def _post(url, data, ctype="application/json", **kw):
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return requests.post(url, data=data, headers={"Content-Type": ctype, **kw.pop("headers", {})}, timeout=60, **kw)


def _still_answers(env, mode, key="logreg"):
    body, ctype = sh.mlflow_body(env.zoo[key], "inputs")
    r = _post(_inv(env, mode, key), body, ctype)
    assert r.status_code == 200, f"server stopped answering: {r.status_code} {r.text[:300]}"
    proc = env.srv if mode == "server" else env.standalone[key]
    assert proc.alive()


def _rows(env, key):
    return sh.rows_of(env.zoo[key])


# --------------------------------------------------------------------------------------
# MLflow scoring protocol
# --------------------------------------------------------------------------------------

MLFLOW_CASES = {
    # key, body builder, names any of which the message must mention
    "wrong-column-name": (
        "pipeline",
        lambda rows: {"dataframe_split": {"columns": ["f0", "f1", "f2", "zz"], "data": rows}},
        ["f3", "zz"],
    ),
    "missing-column-records": (
        "coltrans",
        lambda rows: {"dataframe_records": [{"num0": r[0], "num1": r[1]} for r in rows]},
        ["color"],
    ),
    "wrong-width-instances": ("logreg", lambda rows: {"instances": [r[:3] for r in rows]}, ["X"]),
    "wrong-width-one-row": ("logreg", lambda rows: {"inputs": rows[:3] + [rows[3][:2]] + rows[4:]}, ["X"]),
    "wrong-width-split": (
        "pipeline",
        lambda rows: {"dataframe_split": {"columns": ["f0", "f1", "f2", "f3"], "data": [r[:3] for r in rows]}},
        ["f3", "column", "width", "values"],
    ),
    "string-in-float-column": (
        "coltrans",
        lambda rows: {"dataframe_split": {"columns": ["num0", "num1", "color"], "data": [["abc", r[1], r[2]] for r in rows]}},
        ["num0"],
    ),
    "string-in-tensor": ("logreg", lambda rows: {"instances": [[r[0], "x", r[2], r[3]] for r in rows]}, ["X"]),
    "null-in-float-column": (
        "coltrans",
        lambda rows: {"dataframe_records": [{"num0": r[0], "num1": None, "color": r[2]} for r in rows]},
        ["num1"],
    ),
    "null-in-tensor": ("logreg", lambda rows: {"inputs": [[None, r[1], r[2], r[3]] for r in rows]}, ["X"]),
    "number-in-string-column": (
        "coltrans",
        lambda rows: {"dataframe_split": {"columns": ["num0", "num1", "color"], "data": [[r[0], r[1], 7] for r in rows]}},
        ["color"],
    ),
    "two-formats": ("logreg", lambda rows: {"instances": rows, "inputs": rows}, ["instances", "inputs"]),
    "no-format": ("logreg", lambda rows: {"data": rows}, ["dataframe_split", "instances", "inputs"]),
    "not-an-object": ("logreg", lambda rows: rows, []),
}


@pytest.mark.parametrize("case", sorted(MLFLOW_CASES))
@pytest.mark.parametrize("mode", MODES)
def test_mlflow_bad_input(env, mode, case):
    key, build, names = MLFLOW_CASES[case]
    r = _post(_inv(env, mode, key), build(_rows(env, key)))
    assert_json_error(r, 400, "BAD_REQUEST", naming=names)
    _still_answers(env, mode, key)


@pytest.mark.parametrize(
    "raw",
    [b'{"instances": [[1, 2, 3, 4]', b"{not json}", b"", b"   ", b'{"instances": [[1,2,3,4]]} trailing', b"\xff\xfe\x00"],
    ids=["truncated", "garbage", "empty", "blank", "trailing", "not-utf8"],
)
@pytest.mark.parametrize("mode", MODES)
def test_mlflow_malformed_json_or_empty_body(env, mode, raw):
    r = _post(_inv(env, mode, "logreg"), raw)
    assert_json_error(r, 400, "BAD_REQUEST")
    _still_answers(env, mode)


@pytest.mark.parametrize("mode", MODES)
def test_csv_bad_input(env, mode):
    url = _inv(env, mode, "pipeline")
    r = _post(url, "f0,f1,f2,zz\n1,2,3,4\n", "text/csv")
    assert_json_error(r, 400, "BAD_REQUEST", naming=["f3", "zz"])
    r = _post(url, "f0,f1,f2,f3\n1,2,abc,4\n", "text/csv")
    assert_json_error(r, 400, "BAD_REQUEST", naming=["f2"])
    r = _post(url, "", "text/csv")
    assert_json_error(r, 400, "BAD_REQUEST")
    _still_answers(env, mode, "pipeline")


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/json; format=pandas-split",
        "application/octet-stream",
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_wrong_content_type_415(env, mode, ctype):
    body, _ = sh.mlflow_body(env.zoo["logreg"], "inputs")
    r = _post(_inv(env, mode, "logreg"), body, ctype)
    assert r.status_code == 415, (ctype, r.status_code, r.text[:300])
    _still_answers(env, mode)


@pytest.mark.parametrize("mode", MODES)
def test_body_over_limit_413(env, mode):
    n = MAX_BODY // 40 + 100
    rows = [[0.123456789, -0.987654321, 0.5, 1.25]] * n
    data = json.dumps({"instances": rows}).encode()
    assert len(data) > MAX_BODY
    r = _post(_inv(env, mode, "logreg"), data)
    assert r.status_code == 413, (r.status_code, r.text[:300])
    # V2 too
    body = {"inputs": [{"name": "X", "shape": [n, 4], "datatype": "FP32", "data": sum(rows, [])}]}
    r = _post(f"{_base(env, mode, 'logreg')}/v2/models/{_v2_name(env, mode, 'logreg')}/infer", body)
    assert r.status_code == 413, (r.status_code, r.text[:300])
    # just under the limit is fine
    small = json.dumps({"instances": rows[: MAX_BODY // 80]}).encode()
    assert len(small) < MAX_BODY
    r = _post(_inv(env, mode, "logreg"), small)
    assert r.status_code == 200, r.text[:300]
    _still_answers(env, mode)


def test_unknown_deployment_404(env):
    body, ctype = sh.mlflow_body(env.zoo["logreg"], "inputs")
    r = _post(f"{env.srv.url}/serving/no-such-deployment/invocations", body, ctype)
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.get(f"{env.srv.url}/serving/no-such-deployment/ping", timeout=30)
    assert r.status_code == 404, r.text
    r = requests.get(f"{env.srv.url}{DEPLOYMENTS}/no-such-deployment", timeout=30)
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.patch(f"{env.srv.url}{DEPLOYMENTS}/no-such-deployment", json={"alias": "champion"}, timeout=30)
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = requests.delete(f"{env.srv.url}{DEPLOYMENTS}/no-such-deployment", timeout=30)
    assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.parametrize("mode", MODES)
def test_unknown_model_v2_v1_404(env, mode):
    base = _base(env, mode, "logreg")
    inputs = {"inputs": sh.v2_inputs_json(env.zoo["logreg"])}
    for r in (
        requests.post(f"{base}/v2/models/no-such-model/infer", json=inputs, timeout=30),
        requests.get(f"{base}/v2/models/no-such-model", timeout=30),
        requests.get(f"{base}/v2/models/no-such-model/ready", timeout=30),
        requests.post(f"{base}/v1/models/no-such-model:predict", json={"instances": [[1, 2, 3, 4]]}, timeout=30),
        requests.get(f"{base}/v1/models/no-such-model", timeout=30),
    ):
        assert_json_error(r, 404, style="v2")
    # unknown version of a known model
    name = _v2_name(env, mode, "logreg")
    r = requests.post(f"{base}/v2/models/{name}/versions/99/infer", json=inputs, timeout=30)
    assert_json_error(r, 404, style="v2")


# --------------------------------------------------------------------------------------
# V2
# --------------------------------------------------------------------------------------


def _v2_input(n=sh.N_ROWS, name="X", shape=None, datatype="FP32", data=None):
    data = data if data is not None else [0.25] * (n * 4)
    return {"name": name, "shape": shape or [n, 4], "datatype": datatype, "data": data}


V2_CASES = {
    "wrong-shape": ({"inputs": [_v2_input(shape=[sh.N_ROWS, 3], data=[0.5] * (sh.N_ROWS * 3))]}, ["X"]),
    "shape-data-mismatch": ({"inputs": [_v2_input(shape=[sh.N_ROWS, 4], data=[0.5] * 9)]}, ["X"]),
    "wrong-datatype": ({"inputs": [_v2_input(datatype="BYTES", data=["a"] * (sh.N_ROWS * 4))]}, ["X"]),
    "unknown-datatype": ({"inputs": [_v2_input(datatype="FP33")]}, ["X", "FP33"]),
    "unknown-input-name": ({"inputs": [_v2_input(name="Y")]}, ["Y", "X"]),
    "no-inputs": ({"inputs": []}, ["X", "inputs"]),
    "missing-inputs-key": ({"id": "x"}, ["inputs"]),
    "string-data-in-fp32": ({"inputs": [_v2_input(data=["a"] * (sh.N_ROWS * 4))]}, ["X"]),
    "duplicate-input": ({"inputs": [_v2_input(), _v2_input()]}, ["X"]),
    "unknown-output": ({"inputs": [_v2_input()], "outputs": [{"name": "nope"}]}, ["nope"]),
}


@pytest.mark.parametrize("case", sorted(V2_CASES))
@pytest.mark.parametrize("mode", MODES)
def test_v2_bad_input(env, mode, case):
    body, names = V2_CASES[case]
    r = _post(f"{_base(env, mode, 'logreg')}/v2/models/{_v2_name(env, mode, 'logreg')}/infer", body)
    assert_json_error(r, 400, style="v2", naming=names)
    _still_answers(env, mode)


@pytest.mark.parametrize("mode", MODES)
def test_v2_coltrans_missing_and_wrong_type(env, mode):
    base, name = _base(env, mode, "coltrans"), _v2_name(env, mode, "coltrans")
    inputs = sh.v2_inputs_json(env.zoo["coltrans"])
    r = _post(f"{base}/v2/models/{name}/infer", {"inputs": [i for i in inputs if i["name"] != "color"]})
    assert_json_error(r, 400, style="v2", naming=["color"])
    bad = [dict(i, datatype="FP32", data=[1.0] * len(i["data"])) if i["name"] == "color" else i for i in inputs]
    r = _post(f"{base}/v2/models/{name}/infer", {"inputs": bad})
    assert_json_error(r, 400, style="v2", naming=["color"])
    _still_answers(env, mode, "coltrans")


def _binary_request(url, header, payload):
    hj = json.dumps(header).encode()
    return requests.post(
        url,
        data=hj + payload,
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(hj))},
        timeout=60,
    )


@pytest.mark.parametrize("mode", MODES)
def test_v2_binary_size_mismatch(env, mode):
    url = f"{_base(env, mode, 'logreg')}/v2/models/{_v2_name(env, mode, 'logreg')}/infer"
    n = sh.N_ROWS
    good = np.asarray(env.zoo["logreg"].X, dtype=np.float32).tobytes()
    inp = {"name": "X", "shape": [n, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(good)}}
    # sanity: the well-formed binary request works (so the failures below are about the sizes)
    r = _binary_request(url, {"inputs": [inp]}, good)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    # declared size larger than the bytes sent
    r = _binary_request(url, {"inputs": [inp]}, good[:-16])
    assert_json_error(r, 400, style="v2", naming=["X", "binary"])
    # declared size does not match the shape
    inp2 = dict(inp, parameters={"binary_data_size": len(good) - 16})
    r = _binary_request(url, {"inputs": [inp2]}, good[:-16])
    assert_json_error(r, 400, style="v2", naming=["X"])
    # extra bytes after the last tensor
    r = _binary_request(url, {"inputs": [inp]}, good + b"\0" * 8)
    assert_json_error(r, 400, style="v2")
    # header length larger than the body
    hj = json.dumps({"inputs": [inp]}).encode()
    r = requests.post(
        url, data=hj, headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(hj) + 500)}, timeout=60
    )
    assert_json_error(r, 400, style="v2")
    # header length that is not a number
    r = requests.post(url, data=hj, headers={"Inference-Header-Content-Length": "abc"}, timeout=60)
    assert_json_error(r, 400, style="v2")
    # BYTES element length prefix running past the end
    if True:
        cinp = sh.v2_inputs_json(env.zoo["coltrans"])
        curl = f"{_base(env, mode, 'coltrans')}/v2/models/{_v2_name(env, mode, 'coltrans')}/infer"
        blob = b"".join(struct.pack("<I", len(s)) + s.encode() for s in cinp[2]["data"])
        broken = blob[:-3] + struct.pack("<I", 1000)
        header = {
            "inputs": [
                cinp[0],
                cinp[1],
                {"name": "color", "shape": cinp[2]["shape"], "datatype": "BYTES", "parameters": {"binary_data_size": len(broken)}},
            ]
        }
        r = _binary_request(curl, header, broken)
        assert_json_error(r, 400, style="v2", naming=["color"])
    _still_answers(env, mode)


@pytest.mark.parametrize("mode", MODES)
def test_v1_bad_input(env, mode):
    url = f"{_base(env, mode, 'logreg')}/v1/models/{_v2_name(env, mode, 'logreg')}:predict"
    for body, names in (
        ({"instances": [[1.0, 2.0, 3.0]]}, ["X"]),
        ({"instances": [[1.0, "a", 3.0, 4.0]]}, ["X"]),
        ({"rows": [[1.0, 2.0, 3.0, 4.0]]}, ["instances", "inputs"]),
        ({"instances": [[1.0, 2.0, 3.0, 4.0]], "inputs": [[1.0, 2.0, 3.0, 4.0]]}, ["instances", "inputs"]),
    ):
        r = _post(url, body)
        assert_json_error(r, 400, style="v2", naming=names)
    r = _post(url, b"{oops")
    assert_json_error(r, 400, style="v2")
    _still_answers(env, mode)


def test_server_still_healthy_after_all(env):
    assert env.srv.alive()
    assert requests.get(env.srv.url + "/health", timeout=30).status_code == 200
    for s in env.standalone.values():
        assert s.alive(), s.stderr_text()
    text = sh.get_metrics(env.srv.url)
    five = [
        (l, v)
        for n, l, v in sh.parse_metrics(text)
        if n == "slipway_serving_requests_total" and l.get("code", "").startswith("5") and v > 0
    ]
    assert not five, f"5xx answers counted: {five}"


# --------------------------------------------------------------------------------------
# Non-ONNX flavor
# --------------------------------------------------------------------------------------


def _flavor_message_ok(msg):
    low = msg.lower()
    assert "sklearn" in low, msg
    assert "skl2onnx" in low or "mlflow.onnx" in low, msg


def test_sklearn_flavor_deployment_refused(env):
    r = requests.post(
        env.srv.url + DEPLOYMENTS, json={"name": "sk-dep", "model": env.sk_name, "alias": "champion"}, timeout=60
    )
    body = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    _flavor_message_ok(body["message"])
    r = requests.get(env.srv.url + DEPLOYMENTS + "/sk-dep", timeout=30)
    assert r.status_code == 404, r.text
    # lazily by name through V2: also refused, and not a 5xx
    r = requests.post(
        f"{env.srv.url}/v2/models/{env.sk_name}/infer", json={"inputs": [_v2_input()]}, timeout=60
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    _flavor_message_ok(r.json()["error"])


def test_sklearn_flavor_standalone_exits_2(env):
    p = sh.run_serve_to_exit(f"models:/{env.sk_name}@champion", env.srv.url)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    _flavor_message_ok(p.stderr + p.stdout)
    assert "panicked" not in p.stderr


def test_standalone_unknown_model_exits_nonzero(env):
    p = sh.run_serve_to_exit("models:/no-such-model-xyz@champion", env.srv.url)
    assert p.returncode not in (0, None) and p.returncode != 101, (p.returncode, p.stderr[-2000:])
    assert "no-such-model-xyz" in p.stderr + p.stdout, p.stderr[-2000:]


# --------------------------------------------------------------------------------------
# Deployment spec validation
# --------------------------------------------------------------------------------------


def _spec_cases(env):
    m = env.zoo["logreg"].name
    return {
        "missing-model": {"name": unique("spec"), "alias": "champion"},
        "missing-name": {"model": m, "alias": "champion"},
        "missing-alias-and-version": {"name": unique("spec"), "model": m},
        "both-alias-and-version": {"name": unique("spec"), "model": m, "alias": "champion", "version": "1"},
        "unknown-alias": {"name": unique("spec"), "model": m, "alias": "nope"},
        "unknown-version": {"name": unique("spec"), "model": m, "version": "42"},
        "canary-weight-zero": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1", "weight": 0}},
        "canary-weight-one": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1", "weight": 1}},
        "canary-weight-above": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1", "weight": 1.5}},
        "canary-weight-negative": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1", "weight": -0.1}},
        "canary-weight-string": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1", "weight": "lots"}},
        "canary-without-weight": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"version": "1"}},
        "canary-without-target": {"name": unique("spec"), "model": m, "alias": "champion", "canary": {"weight": 0.1}},
        "shadow-weight-above": {"name": unique("spec"), "model": m, "alias": "champion", "shadow": {"version": "1", "weight": 2}},
        "log-sample-above": {"name": unique("spec"), "model": m, "alias": "champion", "log_sample": 1.5},
        "bad-name": {"name": "has space/and slash", "model": m, "alias": "champion"},
    }


def test_deployment_spec_validation(env):
    failures = []
    for case, spec in _spec_cases(env).items():
        r = requests.post(env.srv.url + DEPLOYMENTS, json=spec, timeout=60)
        try:
            assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
        except AssertionError as e:
            failures.append(f"{case}: {e}")
            continue
        if "name" in spec and "/" not in spec["name"]:
            g = requests.get(f"{env.srv.url}{DEPLOYMENTS}/{spec['name']}", timeout=30)
            if g.status_code != 404:
                failures.append(f"{case}: refused spec still created a deployment ({g.status_code})")
    assert not failures, "\n".join(failures)


def test_deployment_unknown_model_and_malformed(env):
    r = requests.post(env.srv.url + DEPLOYMENTS, json={"name": unique("spec"), "model": "no-such-model", "alias": "a"}, timeout=60)
    assert_json_error(r, (400, 404), ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"))
    r = requests.post(env.srv.url + DEPLOYMENTS, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=60)
    assert_json_error(r, 400)
    r = requests.post(env.srv.url + DEPLOYMENTS, json=[1, 2], timeout=60)
    assert_json_error(r, 400)


def test_deployment_duplicate_name(env):
    spec = {"name": env.deps["logreg"], "model": env.zoo["logreg"].name, "alias": "champion"}
    r = requests.post(env.srv.url + DEPLOYMENTS, json=spec, timeout=60)
    assert_json_error(r, (400, 409), "RESOURCE_ALREADY_EXISTS")


def test_deployment_patch_validation(env):
    d = env.deps["pipeline"]
    failures = []
    for patch in (
        {"alias": "champion", "version": "1"},
        {"canary": {"version": "1", "weight": 3}},
        {"alias": "nope"},
        {"version": "42"},
        {"log_sample": -1},
    ):
        r = requests.patch(f"{env.srv.url}{DEPLOYMENTS}/{d}", json=patch, timeout=60)
        try:
            assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
        except AssertionError as e:
            failures.append(f"PATCH {patch}: {e}")
    # the deployment is untouched and still serves
    dep = requests.get(f"{env.srv.url}{DEPLOYMENTS}/{d}", timeout=30).json()["deployment"]
    if not (dep.get("alias") == "champion" and not dep.get("version") and not dep.get("canary")):
        failures.append(f"deployment changed by refused patches: {dep}")
    assert not failures, "\n".join(failures)
    _still_answers(env, "server", "pipeline")


# --------------------------------------------------------------------------------------
# No ONNX Runtime library
# --------------------------------------------------------------------------------------


def _no_runtime_env(tmp_path):
    """No python3 on PATH, no venv, no ORT_DYLIB_PATH, cwd without .slipway/."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "HOME": str(tmp_path), "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def lonely_bin(tmp_path_factory):
    """A copy of the binary outside any checkout (so no ./.slipway/onnxruntime beside it)."""
    import shutil

    from conftest import slipway_bin

    d = tmp_path_factory.mktemp("lonely-bin")
    dst = d / "slipway"
    shutil.copy2(slipway_bin(), dst)
    return str(dst)


def test_standalone_without_runtime_exits_2(env, tmp_path, lonely_bin):
    import subprocess

    from conftest import free_port

    p = subprocess.run(
        [lonely_bin, "serve", str(env.zoo["logreg"].local_dir), "--port", str(free_port())],
        cwd=tmp_path,
        env=_no_runtime_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 2, (p.returncode, out[-2000:])
    assert "onnx runtime library not found" in out, out[-2000:]
    assert "pip install onnxruntime" in out, out[-2000:]
    assert "panicked" not in out


def test_server_without_runtime_keeps_running(env, tmp_path, lonely_bin):
    srv = SlipwayServer(
        tmp_path / "data",
        tmp_path / "logs",
        binary=lonely_bin,
        env=_no_runtime_env(tmp_path),
        cwd=tmp_path,
        test_backends=False,
    ).start()
    try:
        r = requests.get(srv.url + "/v2/health/ready", timeout=10)
        assert r.status_code == 503, (r.status_code, r.text)
        assert "onnx runtime library not found" in r.json()["error"], r.text
        # the tracking API is unaffected
        r = requests.post(srv.url + "/api/2.0/mlflow/experiments/create", json={"name": "x"}, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()
        env.srv.use()
