"""Overload: a tiny queue (capacity 2, one worker), a slow model (a big MLP, 500 rows per
request) and 64 concurrent clients. Every answer is 200, 429 or 503 (429/503 with
Retry-After), at least one is 429/503, the process survives and answers a single request
afterwards. A tiny request timeout gives 503.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import RawResponse, assert_json_error, unique

CLIENTS = 64
REQUESTS_PER_CLIENT = 4
ROWS = 500
FEATURES = 32


def slow_model():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(21)
    X = rng.normal(size=(200, FEATURES)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    m = MLPClassifier(hidden_layer_sizes=(512, 512), max_iter=2, random_state=0).fit(X, y)
    return sh._to_onnx(m, X), X, m.predict(X)


@pytest.fixture(scope="module")
def ov(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-overload")
    srv = sh.ServingServer(root / "data", root / "logs", ["--serving-queue-capacity", "2", "--serving-workers", "1"])
    srv.start()
    onx, X, y = slow_model()
    name = unique("ov-mlp")
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    mlflow.set_experiment(experiment_id=client.create_experiment(unique("ov-exp")))
    with mlflow.start_run():
        sh.log_onnx(onx, name, X, y)
    client.set_registered_model_alias(name, "champion", "1")
    sh.create_deployment(srv.url, {"name": "ov", "model": name, "alias": "champion"})
    sh.wait_deployment_ready(srv.url, "ov")
    Xreq = np.random.default_rng(22).normal(size=(ROWS, FEATURES)).astype(np.float32)
    import onnxruntime

    ref = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": Xreq})
    state = type("OV", (), {})()
    state.srv, state.name, state.root, state.X, state.labels = srv, name, root, Xreq, ref[0]
    state.mlflow_body = json.dumps({"inputs": Xreq.tolist()}).encode()
    state.v2_body = json.dumps(
        {"inputs": [{"name": "X", "shape": [ROWS, FEATURES], "datatype": "FP32", "data": Xreq.reshape(-1).tolist()}]}
    ).encode()
    yield state
    srv.stop()


def _blast(urls_bodies, clients=CLIENTS, per_client=REQUESTS_PER_CLIENT):
    """clients threads, each sending per_client requests (alternating the given targets)."""
    barrier = threading.Barrier(clients)

    def client(i):
        s = requests.Session()
        out = []
        barrier.wait()
        for j in range(per_client):
            url, body, proto = urls_bodies[(i + j) % len(urls_bodies)]
            try:
                r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=300)
                out.append((proto, r.status_code, dict(r.headers), r.text[:2000] if r.status_code != 200 else r.content))
            except requests.RequestException as e:
                out.append((proto, "exception", {}, repr(e)))
        return out

    with ThreadPoolExecutor(clients) as ex:
        return [x for fut in [ex.submit(client, i) for i in range(clients)] for x in fut.result()]


def _check_overload_results(results, labels):
    statuses = [r[1] for r in results]
    bad = [r for r in results if r[1] not in (200, 429, 503)]
    assert not bad, f"{len(bad)} answers not 200/429/503; first: {[(b[0], b[1], str(b[3])[:300]) for b in bad[:3]]}"
    rejected = [r for r in results if r[1] in (429, 503)]
    assert rejected, f"no 429/503 under overload: {sorted(set(statuses))}"
    assert any(r[1] == 200 for r in results), "nothing succeeded under overload"
    for proto, status, headers, text in rejected:
        assert "retry-after" in {k.lower() for k in headers}, (proto, status, headers)
        ra = {k.lower(): v for k, v in headers.items()}["retry-after"]
        assert ra.strip().isdigit() and int(ra) >= 0, ra
        if proto == "mlflow":
            want = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "TEMPORARILY_UNAVAILABLE"
            assert_json_error(RawResponse(status, text.encode()), status, want)
        else:
            assert_json_error(RawResponse(status, text.encode()), status, style="v2")
    for proto, status, headers, content in results:
        if status != 200:
            continue
        body = json.loads(content)
        if proto == "mlflow":
            got = body["predictions"]["output_label"]
        else:
            got = next(o for o in body["outputs"] if o["name"] == "output_label")["data"]
        assert np.array_equal(np.asarray(got), labels), f"wrong answer under load ({proto})"
    return statuses


def _single_ok(url, body):
    r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_server_overload_429_503(ov):
    inv = f"{ov.srv.url}/serving/ov/invocations"
    v2 = f"{ov.srv.url}/v2/models/ov/infer"
    results = _blast([(inv, ov.mlflow_body, "mlflow"), (v2, ov.v2_body, "v2")])
    _check_overload_results(results, ov.labels)
    assert ov.srv.alive(), ov.srv.stderr_text()
    _single_ok(inv, ov.mlflow_body)
    text = sh.get_metrics(ov.srv.url)
    rejected = sum(
        v
        for n, l, v in sh.parse_metrics(text)
        if n == "slipway_serving_requests_total" and l.get("code") in ("429", "503") and l.get("deployment") == "ov"
    )
    assert rejected >= 1, [l for l in text.splitlines() if "requests_total" in l][:20]
    assert sh.metric_values(text, "slipway_serving_queue_depth"), "no queue depth gauge"


def test_standalone_overload_429_503(ov):
    serve = sh.StandaloneServe(
        f"models:/{ov.name}@champion", ov.srv.url, ov.root / "serve-logs", ["--queue-capacity", "2", "--workers", "1"], name="ov"
    ).start()
    try:
        results = _blast(
            [(f"{serve.url}/invocations", ov.mlflow_body, "mlflow"), (f"{serve.url}/v2/models/{ov.name}/infer", ov.v2_body, "v2")]
        )
        _check_overload_results(results, ov.labels)
        assert serve.alive(), serve.stderr_text()
        _single_ok(f"{serve.url}/invocations", ov.mlflow_body)
    finally:
        serve.stop()


def _timeout_check(url, body):
    results = _blast([(url, body, "mlflow")], clients=8, per_client=2)
    statuses = [r[1] for r in results]
    assert set(statuses) <= {200, 503}, statuses
    timed_out = [r for r in results if r[1] == 503]
    assert timed_out, f"no 503 with a 1 ms request timeout: {statuses}"
    for _, _, headers, text in timed_out:
        assert "retry-after" in {k.lower() for k in headers}, headers
        assert_json_error(RawResponse(503, text.encode()), 503, "TEMPORARILY_UNAVAILABLE")


def test_standalone_request_timeout_503(ov):
    serve = sh.StandaloneServe(
        f"models:/{ov.name}@champion", ov.srv.url, ov.root / "serve-logs", ["--request-timeout-ms", "1"], name="ov-timeout"
    ).start()
    try:
        _timeout_check(f"{serve.url}/invocations", ov.mlflow_body)
        assert serve.alive()
    finally:
        serve.stop()


def test_server_request_timeout_503_after_restart(ov):
    """Restart the same data dir with a 1 ms timeout: deployments persist; requests 503."""
    ov.srv.extra_args = ["--serving-request-timeout-ms", "1"]
    ov.srv.restart()
    r = requests.get(f"{ov.srv.url}/api/v1/deployments/ov", timeout=30)
    assert r.status_code == 200, f"deployment lost across restart: {r.status_code} {r.text[:300]}"
    sh.wait_deployment_ready(ov.srv.url, "ov")
    _timeout_check(f"{ov.srv.url}/serving/ov/invocations", ov.mlflow_body)
    assert ov.srv.alive()
    assert requests.get(f"{ov.srv.url}/serving/ov/ping", timeout=30).status_code == 200
