"""The MLflow UI (from the installed mlflow 3.17.2 wheel) on Slipway, in Debian's Chromium.

Data is logged by the real mlflow client; each page is opened as a person would and checked
for what they would look at. Every response from our server is watched: any 4xx/5xx fails the
test unless it is one of the calls listed in ui_helpers.UNSUPPORTED, each with its reason. Screenshots go
to $SLIPWAY_UI_SCREENSHOTS (default: the test's tmp dir).
"""

import json
import re

import pytest
import requests
from conftest import unique
from playwright.sync_api import Page, expect
from ui_helpers import ML, Watcher


@pytest.fixture(scope="module")
def logged(server, tmp_path_factory):
    """An experiment as a data scientist leaves it: three runs with params, a 100-step loss
    curve, a text artifact, a dataset input; a scikit-learn model registered with @champion."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(server.url)
    name = unique("ui-exp")
    exp_id = mlflow.create_experiment(name)
    # The active experiment is process-wide: an earlier test's would refuse to resume our run.
    mlflow.set_experiment(experiment_id=exp_id)
    work = tmp_path_factory.mktemp("ui-data")
    runs = []
    for i in range(3):
        with mlflow.start_run(experiment_id=exp_id, run_name=f"ui-run-{i}") as run:
            mlflow.log_params({"lr": 0.1 * (i + 1), "depth": 3 + i})
            for step in range(100):
                mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            mlflow.log_metric("accuracy", 0.8 + 0.05 * i)
            (work / "hello.txt").write_text(f"hello from ui-run-{i}\n")
            mlflow.log_artifact(str(work / "hello.txt"), artifact_path="notes")
            frame = pd.DataFrame({"x": np.arange(10.0), "y": np.arange(10) % 2})
            mlflow.log_input(mlflow.data.from_pandas(frame, name="training-frame"), context="training")
            runs.append(run.info.run_id)
    model = unique("ui-model")
    with mlflow.start_run(run_id=runs[2]):
        clf = LogisticRegression().fit(np.arange(20.0).reshape(-1, 1), np.arange(20) % 2)
        info = mlflow.sklearn.log_model(clf, name="model", registered_model_name=model)
    client = mlflow.MlflowClient(server.url)
    client.set_registered_model_alias(model, "champion", "1")
    return {"url": server.url, "exp_id": exp_id, "exp": name, "runs": runs, "model": model, "model_id": info.model_id}


def open_page(page: Page, url: str) -> Watcher:
    w = Watcher(page, url.split("/#")[0])
    page.goto(url)
    return w


def test_experiments_and_the_runs_table(page: Page, logged, shots):
    w = open_page(page, f"{logged['url']}/#/experiments")
    expect(page.get_by_text(logged["exp"]).first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "mlflow-experiments.png"))
    page.goto(f"{logged['url']}/#/experiments/{logged['exp_id']}/runs?{ML}")
    for i in range(3):
        expect(page.get_by_text(f"ui-run-{i}").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "mlflow-runs.png"))
    assert 200 in w.answered("/graphql"), "the experiment header is drawn from GraphQL"
    w.assert_clean()


def test_run_detail_with_params_metrics_and_an_artifact_preview(page: Page, logged, shots):
    run = logged["runs"][1]
    w = open_page(page, f"{logged['url']}/#/experiments/{logged['exp_id']}/runs/{run}")
    expect(page.get_by_text("ui-run-1").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("depth").first).to_be_visible()
    expect(page.get_by_text("accuracy").first).to_be_visible()
    expect(page.get_by_text("0.85").first).to_be_visible()
    page.screenshot(path=str(shots / "mlflow-run.png"))
    page.goto(f"{logged['url']}/#/experiments/{logged['exp_id']}/runs/{run}/artifacts")
    page.get_by_text("notes", exact=True).first.click()
    page.get_by_text("hello.txt", exact=True).first.click()
    expect(page.get_by_text("hello from ui-run-1").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "mlflow-artifact.png"))
    assert 200 in w.answered("/get-artifact?"), "the preview came from get-artifact"
    w.assert_clean()


def test_a_metric_chart_draws_from_the_sampled_history(page: Page, logged, shots):
    runs = logged["runs"]
    w = open_page(page, f"{logged['url']}/#/experiments/{logged['exp_id']}/runs/{runs[0]}/model-metrics")
    expect(page.get_by_text("loss").first).to_be_visible(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('canvas, svg.main-svg, .js-plotly-plot')].length > 0", timeout=30_000
    )
    page.screenshot(path=str(shots / "mlflow-chart.png"))
    assert 200 in w.answered("get-history-bulk-interval"), w.seen
    w.assert_clean()


def test_run_compare_shows_params_side_by_side(page: Page, logged, shots):
    runs = json.dumps(logged["runs"])
    w = open_page(page, f"{logged['url']}/#/compare-runs?runs={runs}&experiments={json.dumps([logged['exp_id']])}")
    for i in range(3):
        expect(page.get_by_text(f"ui-run-{i}").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("depth").first).to_be_visible()
    expect(page.get_by_text("0.30000000000000004").or_(page.get_by_text("0.3", exact=True)).first).to_be_visible()
    page.screenshot(path=str(shots / "mlflow-compare.png"))
    w.assert_clean()


def test_logged_models_list_the_sklearn_model(page: Page, logged, shots):
    w = open_page(page, f"{logged['url']}/#/experiments/{logged['exp_id']}/models?{ML}")
    row = page.get_by_role("row").filter(has_text="Ready")
    expect(row.first).to_be_visible(timeout=30_000)
    expect(row.first.get_by_text("model", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "mlflow-logged-models.png"))
    assert 200 in w.answered("logged-models/search")
    w.assert_clean()


def test_registered_model_alias_and_version(page: Page, logged, shots):
    w = open_page(page, f"{logged['url']}/#/models/{logged['model']}")
    expect(page.get_by_text("champion").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "mlflow-model.png"))
    page.goto(f"{logged['url']}/#/models/{logged['model']}/versions/1")
    expect(page.get_by_text("Version 1").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "mlflow-model-version.png"))
    assert 200 in w.answered("model-versions/get-artifact"), "the schema panel read MLmodel"
    w.assert_clean()


# ---- the API the bundle calls, checked directly (bad input included) ----


def test_graphql_answers_the_bundles_operations_and_refuses_the_rest(logged):
    url = f"{logged['url']}/graphql"
    run = logged["runs"][0]
    got = requests.post(url, json={
        "operationName": "GetRun", "variables": {"data": {"runId": run}},
        "query": "query GetRun($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) { run { info { runUuid } } } }",
    }, timeout=30)
    assert got.status_code == 200, got.text
    r = got.json()["data"]["mlflowGetRun"]["run"]
    assert r["info"]["runUuid"] == run and r["info"]["status"] == "FINISHED"
    assert r["info"]["startTime"].isdigit(), "64-bit integers are strings, as MLflow's LongString"
    assert {m["key"] for m in r["data"]["metrics"]} == {"loss", "accuracy"}
    assert r["experiment"]["name"] == logged["exp"]

    got = requests.post(url, json={"operationName": "GetRun", "variables": {"data": {"runId": "0" * 32}},
                                   "query": "query GetRun { mlflowGetRun { run { info { runUuid } } } }"}, timeout=30)
    assert got.status_code == 200 and got.json()["data"]["mlflowGetRun"] is None and got.json()["errors"]

    for body, why in [
        (b"{not json", "malformed JSON"),
        (json.dumps({"operationName": "GetRun"}).encode(), "no query"),
        (json.dumps({"operationName": "DropTables", "query": "query DropTables { x }"}).encode(), "unknown operation"),
        (json.dumps({"operationName": "GetRun", "query": "query GetRun { somethingElse }"}).encode(), "wrong field"),
        (json.dumps({"operationName": "GetRun", "query": "query GetRun { mlflowGetRun }", "variables": {"data": {}}}).encode(), "no runId"),
    ]:
        got = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert got.status_code == 400, (why, got.status_code, got.text)
        assert got.json()["errors"][0]["message"], why


def test_history_interval_keeps_first_last_and_extremes(logged):
    import mlflow

    client = mlflow.MlflowClient(logged["url"])
    run = client.create_run(logged["exp_id"]).info.run_id
    values = [float(i % 7) for i in range(2000)]
    values[1234] = 500.0
    values[777] = -500.0
    for start in range(0, 2000, 1000):
        client.log_batch(run, metrics=[
            mlflow.entities.Metric("spiky", values[s], 1000 + s, s) for s in range(start, start + 1000)
        ])
    base = f"{logged['url']}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
    got = requests.get(base, params={"run_ids": [run, logged["runs"][0]], "metric_key": "spiky", "max_results": 320}, timeout=30)
    assert got.status_code == 200, got.text
    points = got.json()["metrics"]
    steps = [p["step"] for p in points]
    assert len(points) == 320 and {p["run_id"] for p in points} == {run}
    assert steps[0] == 0 and steps[-1] == 1999 and 1234 in steps and 777 in steps
    assert steps == sorted(steps)

    default = requests.get(base, params={"run_ids": run, "metric_key": "spiky"}, timeout=30).json()["metrics"]
    assert len(default) == 320, "320 points a run when max_results is not given"

    zoomed = requests.get(base, params={"run_ids": run, "metric_key": "spiky", "max_results": 10,
                                        "start_step": 100, "end_step": 120}, timeout=30).json()["metrics"]
    assert zoomed[0]["step"] == 100 and zoomed[-1]["step"] == 120 and len(zoomed) == 10
    for params, why in [
        ({"metric_key": "spiky"}, "no run_ids"),
        ({"run_ids": run}, "no metric_key"),
        ({"run_ids": run, "metric_key": "spiky", "max_results": 0}, "max_results 0"),
        ({"run_ids": run, "metric_key": "spiky", "max_results": 2501}, "max_results too large"),
        ({"run_ids": run, "metric_key": "spiky", "start_step": 5}, "half a range"),
        ({"run_ids": run, "metric_key": "spiky", "start_step": 5, "end_step": 1}, "an inverted range"),
        ({"run_ids": [run] * 101, "metric_key": "spiky"}, "101 runs"),
    ]:
        got = requests.get(base, params=params, timeout=30)
        assert got.status_code == 400 and got.json()["error_code"] == "INVALID_PARAMETER_VALUE", (why, got.text)


def test_file_previews_and_their_bad_paths(logged):
    url, run = logged["url"], logged["runs"][0]
    got = requests.get(f"{url}/get-artifact", params={"path": "notes/hello.txt", "run_uuid": run}, timeout=30)
    assert got.status_code == 200 and got.text == "hello from ui-run-0\n"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("attachment")
    got = requests.get(f"{url}/model-versions/get-artifact",
                       params={"path": "MLmodel", "name": logged["model"], "version": "1"}, timeout=30)
    assert got.status_code == 200 and "flavors" in got.text
    got = requests.get(f"{url}/ajax-api/2.0/mlflow/logged-models/{logged['model_id']}/artifacts/directories", timeout=30)
    assert got.status_code == 200 and "MLmodel" in {f["path"] for f in got.json()["files"]}
    got = requests.get(f"{url}/ajax-api/2.0/mlflow/logged-models/{logged['model_id']}/artifacts/files",
                       params={"artifact_file_path": "MLmodel"}, timeout=30)
    assert got.status_code == 200 and "flavors" in got.text
    got = requests.post(f"{url}/ajax-api/2.0/mlflow/experiments/search-datasets",
                        json={"experiment_ids": [logged["exp_id"]]}, timeout=30)
    assert got.status_code == 200
    assert [(d["name"], d.get("context")) for d in got.json()["dataset_summaries"]] == [("training-frame", "training")]

    got = requests.get(f"{url}/get-artifact", params={"path": "notes/nope.txt", "run_uuid": run}, timeout=30)
    assert got.status_code == 404 and got.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    for path in ["../../../etc/passwd", "/etc/passwd", "notes/../../x", "%2e%2e/%2e%2e/x", "notes/%252e%252e/x", "notes\\..\\x"]:
        got = requests.get(f"{url}/get-artifact", params={"path": path, "run_uuid": run}, timeout=30)
        assert got.status_code == 400, (path, got.status_code, got.text)
    for raw in ["/static-files/../../../etc/passwd", "/static-files/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/static-files/static/%252e%252e/index.html", "/static-files/static/", "/static-files/static/js"]:
        got = requests.get(url + raw, timeout=30)
        assert 400 <= got.status_code < 500, (raw, got.status_code)
        assert "root:" not in got.text


def test_pages_carry_security_and_cache_headers(logged):
    url = logged["url"]
    index = requests.get(f"{url}/", timeout=30)
    assert index.status_code == 200 and "static-files/static/js/main." in index.text
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    assert index.headers["Cache-Control"] == "no-cache"
    js = re.search(r'src="(static-files/static/js/main\.[0-9a-f]+\.js)"', index.text).group(1)
    asset = requests.get(f"{url}/{js}", timeout=30)
    assert asset.status_code == 200 and "immutable" in asset.headers["Cache-Control"]
    assert asset.headers["Content-Type"].startswith("text/javascript")
