"""Hot swap: a deployment (and a standalone `slipway serve`) follows alias `champion` of a
model with 3 versions whose predictions differ; 8 client threads keep sending requests
while the alias moves v1 -> v2 -> v3 through the mlflow client. Zero failed requests, every
answer correct for the version named in its X-Slipway-Model-Version header, versions
monotonic per thread, final version 3.
"""

import json
import threading
import time

import mlflow
import numpy as np
import pytest
import requests
import serving_helpers as sh
from serving_helpers import expected_per_version, register_versions, versioned_models
from conftest import unique

THREADS = 8
MAX_PER_THREAD = 500  # bound: at most 4,000 requests per run
TAIL_S = 2.0  # keep sending this long after the last swap was seen by every thread
SWITCH_TIMEOUT_S = 60


class Load:
    """THREADS clients posting continuously; records (status, version, correct) per thread."""

    def __init__(self, url, X, expected):
        self.url = url
        self.body = json.dumps({"inputs": X.tolist()}).encode()
        self.expected = expected
        self.stop = threading.Event()
        self.results = [[] for _ in range(THREADS)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)]

    def _run(self, i):
        s = requests.Session()
        out = self.results[i]
        while not self.stop.is_set() and len(out) < MAX_PER_THREAD:
            try:
                r = s.post(self.url, data=self.body, headers={"Content-Type": "application/json"}, timeout=60)
            except requests.RequestException as e:
                out.append(("exception", None, repr(e)))
                continue
            v = r.headers.get("X-Slipway-Model-Version")
            if r.status_code != 200:
                out.append((r.status_code, v, r.text[:300]))
                continue
            ok = False
            try:
                got = np.asarray(r.json()["predictions"]["variable"], dtype=np.float64)
                want = self.expected.get(v)
                ok = want is not None and got.shape == want.shape and np.all(np.abs(got - want) <= sh.TOL)
            except (ValueError, KeyError, TypeError):
                pass
            out.append((200, v, "ok" if ok else f"wrong answer for version {v}: {r.text[:200]}"))
            time.sleep(0.005)

    def start(self):
        for t in self.threads:
            t.start()

    def last_versions(self):
        return [r[-1][1] if r else None for r in self.results]

    def wait_all_on(self, version, timeout=SWITCH_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [i for i, t in enumerate(self.threads) if t.is_alive()]
            if not live:
                return
            if all(self.results[i] and self.results[i][-1][1] == version for i in live):
                return
            time.sleep(0.05)
        raise AssertionError(f"threads did not all reach version {version} in {timeout}s: {self.last_versions()}")

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def run_swap(url, client, name, expected, X):
    load = Load(url, X, expected)
    load.start()
    try:
        load.wait_all_on("1", timeout=30)
        time.sleep(0.3)
        client.set_registered_model_alias(name, "champion", "2")
        load.wait_all_on("2")
        time.sleep(0.3)
        client.set_registered_model_alias(name, "champion", "3")
        load.wait_all_on("3")
        time.sleep(TAIL_S)
    finally:
        load.finish()
    return load.results


def check_results(results):
    total = sum(len(r) for r in results)
    assert total > THREADS * 3, f"too few requests made: {total}"
    failures = [(i, r) for i, rs in enumerate(results) for r in rs if r[0] != 200 or r[2] != "ok"]
    assert not failures, f"{len(failures)} failed of {total}; first: {failures[:5]}"
    seen = set()
    for i, rs in enumerate(results):
        versions = [int(r[1]) for r in rs]
        seen.update(versions)
        assert versions == sorted(versions), f"thread {i}: versions not monotonic: {_runs(versions)}"
        assert versions[-1] == 3, f"thread {i}: last version {versions[-1]}: {_runs(versions)}"
    assert seen == {1, 2, 3}, seen


def _runs(versions):
    """[(version, count)] run-length view for messages."""
    out = []
    for v in versions:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


@pytest.fixture(scope="module")
def hs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-hotswap")
    srv = sh.ServingServer(root / "data", root / "logs")
    srv.start()
    models = versioned_models()
    X = sh._float_data(99, 5)
    expected = expected_per_version(models, X)
    state = type("HS", (), {})()
    state.srv, state.models, state.X, state.expected, state.root = srv, models, X, expected, root
    yield state
    srv.stop()


def test_deployment_follows_alias_without_failures(hs):
    name = unique("hs-dep")
    client = register_versions(hs.srv, name, hs.models)
    sh.create_deployment(hs.srv.url, {"name": "hs", "model": name, "alias": "champion"})
    sh.wait_deployment_ready(hs.srv.url, "hs")
    results = run_swap(f"{hs.srv.url}/serving/hs/invocations", client, name, hs.expected, hs.X)
    check_results(results)
    dep = requests.get(f"{hs.srv.url}/api/v1/deployments/hs", timeout=30).json()["deployment"]
    assert str(dep["status"]["primary"]["version"]) == "3", dep
    text = sh.get_metrics(hs.srv.url)
    loads = [
        v
        for n, l, v in sh.parse_metrics(text)
        if n == "slipway_serving_model_loads_total" and l.get("result") not in ("error", "failure", "failed")
    ]
    assert sum(loads) >= 3, [l for l in text.splitlines() if "loads_total" in l]


def test_standalone_follows_alias_without_failures(hs):
    name = unique("hs-standalone")
    client = register_versions(hs.srv, name, hs.models)
    serve = sh.StandaloneServe(
        f"models:/{name}@champion", hs.srv.url, hs.root / "serve-logs", ["--poll-ms", "200"], name="hs"
    ).start()
    try:
        results = run_swap(f"{serve.url}/invocations", client, name, hs.expected, hs.X)
        assert serve.alive(), serve.stderr_text()
    finally:
        serve.stop()
    check_results(results)
