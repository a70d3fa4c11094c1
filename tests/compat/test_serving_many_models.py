"""1,000 tiny registered models under a memory budget that fits only ~300.

Registered fast with raw HTTP (artifact PUTs + registered-models/create +
model-versions/create, source mlflow-artifacts:/<prefix>/<i>), then served lazily by name
through V2 JSON: every model twice in shuffled order, every answer equal to that model's own
onnxruntime prediction; /metrics shows the cache bounded by the budget with evictions, and
the server's RSS does not keep growing.
"""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import unique

N_MODELS = 1000
FIT = 300
ART = "/api/2.0/mlflow-artifacts/artifacts"
REG = "/api/2.0/mlflow"

MLMODEL = """artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_session_options: null
    onnx_version: 1.23.2
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.7
mlflow_version: 3.17.2
model_uuid: {uuid}
signature:
  inputs: '[{{"type": "tensor", "tensor-spec": {{"dtype": "float32", "shape": [-1, 4]}}}}]'
  outputs: '[{{"type": "tensor", "tensor-spec": {{"dtype": "float32", "shape": [-1, 1]}}}}]'
  params: null
"""


def tiny_model(i):
    """variable = X @ W_i + b_i, distinct coefficients per i."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1000 + i)
    W = rng.normal(size=(4, 1)).astype(np.float32)
    b = np.array([float(i)], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["variable"])],
        f"tiny{i}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _put(s, url, path, data):
    r = s.put(f"{url}{ART}/{path}", data=data, timeout=60)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])


def register_all(url, prefix, names, blobs):
    local = threading.local()

    def one(i):
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        base = f"{prefix}/{i}"
        _put(s, url, f"{base}/MLmodel", MLMODEL.format(uuid=f"{i:032x}").encode())
        _put(s, url, f"{base}/model.onnx", blobs[i])
        r = s.post(f"{url}{REG}/registered-models/create", json={"name": names[i]}, timeout=60)
        assert r.status_code == 200, r.text[:300]
        r = s.post(
            f"{url}{REG}/model-versions/create",
            json={"name": names[i], "source": f"mlflow-artifacts:/{base}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text[:300]
        assert r.json()["model_version"]["version"] == "1"

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(one, range(len(names))))


def _infer(s, url, name, X):
    body = {"inputs": [{"name": "X", "shape": list(X.shape), "datatype": "FP32", "data": X.reshape(-1).tolist()}]}
    return s.post(f"{url}/v2/models/{name}/infer", json=body, timeout=120)


def _value(resp):
    out = next(o for o in resp.json()["outputs"] if o["name"] == "variable")
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


def _gauge(text, name):
    vals = sh.metric_values(text, name)
    assert vals, f"metric {name} missing"
    return sum(vals)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    import onnxruntime

    root = tmp_path_factory.mktemp("serving-many")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    prefix = unique("many")
    names = [f"{prefix}-{i:04d}" for i in range(N_MODELS)]
    blobs = [tiny_model(i) for i in range(N_MODELS)]
    X = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
    expected = []
    for b in blobs:
        sess = onnxruntime.InferenceSession(b, providers=["CPUExecutionProvider"])
        expected.append(sess.run(None, {"X": X})[0])
    assert len({round(float(e[0, 0]), 3) for e in expected}) > N_MODELS * 0.9  # distinct models
    register_all(srv.url, prefix, names, blobs)
    state = type("Many", (), {})()
    state.srv, state.names, state.X, state.expected, state.root = srv, names, X, expected, root
    yield state
    srv.stop()


def test_many_models_under_memory_budget(many):
    srv = many.srv
    s = requests.Session()
    # 1. one model's charge, on a server with the default budget
    r = _infer(s, srv.url, many.names[0], many.X)
    assert r.status_code == 200, r.text[:500]
    np.testing.assert_allclose(_value(r), many.expected[0], atol=sh.TOL, rtol=0)
    text = sh.get_metrics(srv.url)
    assert _gauge(text, "slipway_serving_models_loaded") == 1, text[:2000]
    first = _gauge(text, "slipway_serving_model_memory_bytes")
    assert first > 0, "a loaded model is charged nothing"
    # the first load also pays for one-time runtime set-up: take the marginal charge of
    # ten more models as "one model's charge"
    for i in range(1, 11):
        assert _infer(s, srv.url, many.names[i], many.X).status_code == 200
    text = sh.get_metrics(srv.url)
    assert _gauge(text, "slipway_serving_models_loaded") == 11
    charge = (_gauge(text, "slipway_serving_model_memory_bytes") - first) / 10
    assert charge > 0, (first, text[:1000])

    # 2. same data dir, budget for ~300 models
    budget = int(FIT * charge)
    fits = int(budget // charge)
    srv.stop()
    srv.extra_args = ["--serving-memory-budget", str(budget)]
    srv.start()

    order = list(range(N_MODELS)) * 2
    random.Random(42).shuffle(order)
    results = [None] * len(order)
    rss = {}
    done = {"n": 0}
    lock = threading.Lock()
    local = threading.local()
    peak = {"loaded": 0, "bytes": 0}

    def one(k):
        ses = getattr(local, "s", None)
        if ses is None:
            ses = local.s = requests.Session()
        i = order[k]
        r = _infer(ses, srv.url, many.names[i], many.X)
        ok = r.status_code == 200
        detail = None
        if ok:
            got = _value(r)
            ok = got.shape == many.expected[i].shape and bool(np.all(np.abs(got - many.expected[i]) <= sh.TOL))
            detail = got.tolist()
            ok = ok and r.headers.get("X-Slipway-Model-Version") == "1"
        results[k] = (i, r.status_code, ok, detail if ok else r.text[:300])
        with lock:
            done["n"] += 1
            n = done["n"]
        if n % 250 == 0:
            m = sh.get_metrics(srv.url)
            with lock:
                peak["loaded"] = max(peak["loaded"], _gauge(m, "slipway_serving_models_loaded"))
                peak["bytes"] = max(peak["bytes"], _gauge(m, "slipway_serving_model_memory_bytes"))
                rss[n] = srv.rss_bytes()

    rss[0] = srv.rss_bytes()
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(len(order))))
    rss["end"] = srv.rss_bytes()

    failures = [r for r in results if not r[2]]
    assert not failures, f"{len(failures)} of {len(order)} wrong/failed; first: {failures[:5]}"

    text = sh.get_metrics(srv.url)
    loaded = _gauge(text, "slipway_serving_models_loaded")
    mem = _gauge(text, "slipway_serving_model_memory_bytes")
    evictions = _gauge(text, "slipway_serving_model_evictions_total")
    assert loaded <= fits, (loaded, fits, budget, charge)
    assert peak["loaded"] <= fits, (peak, fits)
    assert mem <= budget and peak["bytes"] <= budget, (mem, peak, budget)
    assert evictions > 0, "no evictions with 1,000 models and room for ~300"
    assert evictions >= N_MODELS - fits, (evictions, fits)
    assert srv.alive()
    # RSS: once the cache is full (after the first pass) it must not keep growing with
    # every further load
    mid = rss[1000]
    assert rss["end"] <= mid * 1.25 + 64 * 2**20, {k: v // 2**20 for k, v in rss.items()}
