"""Data versions linked to what came after them, and labeling queues fed from a deployment's
predictions, end to end on a serving server: a classifier trained on a data version (logged as
the run's MLflow dataset input, with the version's digest as its own), registered,
deployed; lineage read forward from the data version to the deployment and back from the
deployment to the data version; queues that sample, take low-margin and monitor-flagged rows
of its traffic, each offered exactly the rows its rule picks (computed here from what was sent).
"""

import json
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import serving_helpers as sh
from conftest import slipway_bin, unique
from playwright.sync_api import Page, expect
from registry_helpers import run_cli
from ui_helpers import Watcher

FEATURES = ["f0", "f1", "f2", "f3"]


def cli(srv, *args):
    p = run_cli(slipway_bin(), *args, "--tracking-uri", srv.url, timeout=120)
    assert p.returncode == 0, f"{p.args}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("lineage")
    srv = sh.ServingServer(root / "data", root / "logs", ["--monitor-interval-secs", "3600"])
    srv.start()
    rng = np.random.default_rng(7)
    X = rng.normal(0, 1, (2000, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    train = pd.DataFrame(X.astype(np.float64), columns=FEATURES)
    train["label"] = y
    folder = root / "train"
    folder.mkdir()
    train.to_csv(folder / "train.csv", index=False)

    state = type("Lab", (), {})()
    state.srv, state.train = srv, train
    state.data = unique("churn")
    state.version = json.loads(cli(srv, "data", "add", state.data, str(folder / "train.csv"), "--json"))["version"]
    assert state.version["version"] == 1
    # A second version nothing was trained on.
    train.iloc[:100].to_csv(folder / "train.csv", index=False)
    cli(srv, "data", "add", state.data, str(folder / "train.csv"))

    state.model = unique("churn-model")
    model = LogisticRegression().fit(X, y)
    client = mlflow.MlflowClient(srv.url)
    mlflow.set_tracking_uri(srv.url)
    mlflow.set_experiment(experiment_id=client.create_experiment(unique("lineage-exp")))
    with mlflow.start_run() as run:
        # The data version's digest (its manifest SHA-256's first 32 hex digits) links the run to it.
        dataset = mlflow.data.from_pandas(train, name=state.data, targets="label", digest=state.version["digest"])
        mlflow.log_input(dataset, context="training")
        sh.log_onnx(sh._to_onnx(model, X, zipmap=False), state.model, X, model.predict(X))
        train.to_csv(root / "reference.csv", index=False)
        mlflow.log_artifact(str(root / "reference.csv"), artifact_path="reference")
    state.run_id = run.info.run_id
    client.set_registered_model_alias(state.model, "champion", "1")
    state.dep = unique("churn-dep")
    r = requests.post(f"{srv.url}/api/v1/deployments", json={"name": state.dep, "model": state.model,
                                                               "alias": "champion"}, timeout=60)
    assert r.status_code == 200, r.text
    yield state
    srv.stop()


def test_lineage_reads_from_a_data_version_to_its_deployment_and_back(lab):
    found = json.loads(cli(lab.srv, "models", "trained-on", f"data:{lab.data}@1", "--json"))
    assert [(v["name"], v["version"], v["run_id"], v["serving"]) for v in found] == [
        (lab.model, "1", lab.run_id, [lab.dep])
    ]
    # The same through an alias of the data version, and the table a person reads.
    cli(lab.srv, "data", "alias", lab.data, "train", "1")
    table = cli(lab.srv, "models", "trained-on", f"data:{lab.data}@train")
    assert lab.model in table and lab.dep in table
    # The second version trained nothing.
    assert json.loads(cli(lab.srv, "models", "trained-on", f"data:{lab.data}@2", "--json")) == []

    back = json.loads(cli(lab.srv, "deployments", "lineage", lab.dep, "--json"))
    assert back["model_version"]["name"] == lab.model and back["run_id"] == lab.run_id
    assert back["serving"] == [lab.dep]
    [ds] = back["datasets"]
    assert (ds["name"], ds["context"], ds["data_versions"]) == (
        lab.data, "training", [{"name": lab.data, "version": 1}]
    )
    text = cli(lab.srv, "deployments", "lineage", lab.dep)
    assert f"data:{lab.data}@1" in text and lab.dep in text

    page = requests.get(f"{lab.srv.url}/ui/lineage/{lab.model}/1", timeout=30)
    assert page.status_code == 200 and f"data {lab.data}@1" in page.text and lab.dep in page.text


def test_lineage_refuses_a_missing_data_version_and_a_double_question(lab):
    r = requests.get(f"{lab.srv.url}/api/v1/lineage/datasets", params={"data": f"{lab.data}@9"}, timeout=30)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    r = requests.get(f"{lab.srv.url}/api/v1/lineage/datasets",
                     params={"data": lab.data, "digest": lab.version["digest"]}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    p = run_cli(slipway_bin(), "models", "trained-on", "data:no-such-set", "--tracking-uri", lab.srv.url)
    assert p.returncode != 0 and "no-such-set" in p.stderr


def share(queue, request_id, row):
    """The server's sampling hash (FNV-1a 64 over queue, request id and row), as a share in [0, 1)."""
    h = 0xCBF29CE484222325
    for b in queue.encode() + b"\0" + request_id.encode() + b"\0" + row.to_bytes(4, "little"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return (h >> 11) / float(1 << 53)


def make_queue(lab, mode, **settings):
    name = unique(f"q-{mode}")
    body = {"name": name, "deployment": lab.dep, "mode": mode, "labels": ["0", "1"], **settings}
    r = requests.post(f"{lab.srv.url}/api/v1/labeling", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return name


def offered(lab, queue):
    """Every item of the queue, by leasing them all (a test-only labeller)."""
    items = {}
    while True:
        r = requests.get(f"{lab.srv.url}/api/v1/labeling/{queue}/next", timeout=30)
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        if item is None:
            return items
        items[(item["request_id"], item["row"])] = item


def test_queues_are_offered_exactly_the_rows_their_rule_picks(lab):
    url = lab.srv.url
    monitor = {"name": unique("lab-mon"), "deployment": lab.dep, "reference": {"run_artifact": "reference/reference.csv"},
               "features": FEATURES, "target": "label"}
    r = requests.post(f"{url}/api/v1/monitors", json=monitor, timeout=60)
    assert r.status_code == 200, r.text
    sample = make_queue(lab, "sample", rate=0.3)
    low_margin = make_queue(lab, "margin", threshold=0.2)
    flagged = make_queue(lab, "flagged")

    lo, hi = lab.train[FEATURES].min(), lab.train[FEATURES].max()
    rng = np.random.default_rng(11)
    sent = {}
    for i in range(40):
        X = rng.uniform(-1, 1, (10, 4)).astype(np.float32)
        if i % 4 == 0:
            X[i % 10, i % 4] = 10.0  # out of the training data's range: the monitor flags it
        rid = uuid.uuid4().hex
        r = requests.post(f"{url}/serving/{lab.dep}/invocations", json={"inputs": X.tolist()},
                          headers={"X-Request-Id": rid}, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["predictions"]
        for row in range(10):
            sent[(rid, row)] = (X[row], out["probabilities"][row])

    for q in (sample, low_margin, flagged):
        r = requests.post(f"{url}/api/v1/labeling/{q}/feed", timeout=120)
        assert r.status_code == 200, r.text
    want_sample = {k for k in sent if share(sample, *k) < 0.3}
    want_margin = {k for k, (_, p) in sent.items() if abs(p[1] - p[0]) < 0.2}
    want_flagged = {k for k, (x, _) in sent.items() if ((x < lo.values) | (x > hi.values)).any()}
    assert 80 < len(want_sample) < 160 and want_margin and len(want_flagged) == 10

    got = {q: offered(lab, q) for q in (sample, low_margin, flagged)}
    assert set(got[sample]) == want_sample
    assert set(got[low_margin]) == want_margin
    assert set(got[flagged]) == want_flagged
    # An item carries the row as the model saw it, named as the monitor names the features.
    (rid, row), item = next(iter(got[flagged].items()))
    x, p = sent[(rid, row)]
    assert list(item["inputs"]) == FEATURES
    assert np.allclose([item["inputs"][f] for f in FEATURES], x)
    assert np.allclose(item["prediction"]["probabilities"], p)

    # Feeding again offers nothing twice.
    for q in (sample, low_margin, flagged):
        r = requests.post(f"{url}/api/v1/labeling/{q}/feed", timeout=120)
        assert r.status_code == 200 and r.json()["added"] == 0, r.text
    # A label on a fed item becomes the deployment's ground truth, as for an offered one.
    item = got[low_margin][next(iter(got[low_margin]))]
    r = requests.post(f"{url}/api/v1/labeling/{low_margin}/label",
                      json={"item_id": item["item_id"], "lease_token": item["lease_token"], "label": "1"}, timeout=30)
    assert r.status_code == 200, r.text
    shown = json.loads(cli(lab.srv, "labeling", "show", low_margin, "--json"))
    assert shown["counts"]["labelled"] == 1 and shown["fed_ms"] > 0


def test_feeding_refuses_a_manual_queue_and_a_queue_without_its_deployment(lab):
    url = lab.srv.url
    manual = make_queue(lab, "manual")
    r = requests.post(f"{url}/api/v1/labeling/{manual}/feed", timeout=30)
    assert r.status_code == 400 and "manual" in r.json()["message"], r.text
    r = requests.post(f"{url}/api/v1/labeling", json={"name": unique("q"), "deployment": "no-such-dep",
                                                      "mode": "sample", "rate": 0.5}, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.post(f"{url}/api/v1/labeling/no-such-queue/feed", timeout=30)
    assert r.status_code == 404, r.text


def offer(lab, queue, items):
    r = requests.post(f"{lab.srv.url}/api/v1/labeling/{queue}/items", json={"items": items}, timeout=30)
    assert r.status_code == 200 and r.json()["added"] == len(items), r.text


def test_a_labeller_works_through_a_queue_in_the_browser_by_key_click_and_typing(page: Page, lab, tmp_path):
    url = lab.srv.url
    picked = make_queue(lab, "manual", labels=["fraud", "ok"])
    offer(lab, picked, [{"request_id": f"req-{i}", "inputs": {"amount": 12.5 + i, "country": "NL"},
                         "prediction": {"value": "ok", "probabilities": [0.45, 0.55]}} for i in range(3)])
    typed = make_queue(lab, "manual", labels=[])
    offer(lab, typed, [{"request_id": "free-0", "inputs": {"text": "is this spam?"}}])

    w = Watcher(page, url)
    page.goto(f"{url}/ui/labeling")
    expect(page.get_by_role("link", name=picked)).to_be_visible()
    page.get_by_role("link", name=picked).click()
    expect(page.locator("#lb-inputs")).to_contain_text("12.5")
    expect(page.locator("#lb-prediction")).to_contain_text("0.55")
    first = page.locator("#lb-id").inner_text()
    page.keyboard.press("1")  # the first label: fraud
    expect(page.locator("#lb-id")).not_to_have_text(first)
    expect(page.locator("#lb-inputs")).to_contain_text("13.5")
    page.get_by_role("button", name="ok").click()
    expect(page.locator("#lb-inputs")).to_contain_text("14.5")
    page.keyboard.press("s")  # skipped: leased to this page until its lease runs out
    expect(page.locator("#lb-status")).to_contain_text("Nothing waits")
    expect(page.locator("#lb-counts")).to_contain_text("2 labelled")

    page.goto(f"{url}/ui/labeling/{typed}")
    page.locator("#lb-text").fill("spam")
    page.keyboard.press("Enter")
    expect(page.locator("#lb-status")).to_contain_text("Nothing waits")
    w.assert_clean()

    # What the page recorded is what an export holds.
    for queue, want in ((picked, {"req-0": "fraud", "req-1": "ok"}), (typed, {"free-0": "spam"})):
        data_set = unique("labelled")
        r = requests.post(f"{url}/api/v1/labeling/{queue}/export", json={"data_set": data_set}, timeout=60)
        assert r.status_code == 200, r.text
        cli(lab.srv, "data", "get", data_set, str(tmp_path / data_set))
        [csv] = list((tmp_path / data_set).rglob("*.csv"))
        got = pd.read_csv(csv)
        assert dict(zip(got["request_id"], got["label"])) == want
