"""Slipway's own pages (/ui/) in Debian's Chromium, on what the closed-loop example leaves: a
pipeline run that trained and promoted a model, a deployment answering traffic, a monitor with
windows, drift and an alert whose webhook cannot be reached, and the audit trail of it all.
Each page is checked for what a person would look at, and no request may fail."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import slipway_bin, unique
from playwright.sync_api import Page, expect
from serving_helpers import DEPLOYMENTS, ServingServer, wait_deployment_ready
from ui_helpers import Watcher

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "closed-loop"
COLUMNS = ["amount_z", "velocity_z", "age_z", "merchant_z"]
WINDOW_S = 5


def venv_path():
    return str(Path(os.environ.get("VIRTUAL_ENV", ".venv")).resolve() / "bin") + os.pathsep + os.environ["PATH"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-slipway")
    proj = root / "closed-loop"
    shutil.copytree(EXAMPLE, proj)
    model = unique("ui-fraud")
    text = (proj / "params.yaml").read_text().replace("name: fraud-example", f"name: {model}")
    (proj / "params.yaml").write_text(text)
    srv = ServingServer(root / "data", root / "logs", ["--monitor-interval-secs", "3600", "--pipeline", str(proj)],
                        env=dict(os.environ, PATH=venv_path()))
    srv.start()
    try:
        p = subprocess.run([slipway_bin(), "run", "--json"], cwd=proj, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, MLFLOW_TRACKING_URI=srv.url, PATH=venv_path()), stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr[-3000:]
        dep = unique("ui-live")
        r = requests.post(f"{srv.url}{DEPLOYMENTS}", json={"name": dep, "model": model, "alias": "champion"}, timeout=60)
        assert r.status_code == 200, r.text
        wait_deployment_ready(srv.url, dep)
        monitor = unique("ui-watch")
        spec = {"name": monitor, "deployment": dep, "reference": {"run_artifact": "reference/train.csv"},
                "target": "label", "features": COLUMNS, "window_seconds": WINDOW_S,
                # Nothing listens there: the alert is recorded with its failed delivery attempts.
                "alerts": [{"name": "drifting", "series": "drift.share", "op": ">=", "threshold": 0.5,
                            "webhook": "http://127.0.0.1:9/unreachable"}]}
        r = requests.post(f"{srv.url}/api/v1/monitors", json=spec, timeout=60)
        assert r.status_code == 200, r.text
        time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.2)
        start = time.time() // WINDOW_S * WINDOW_S
        rng = np.random.default_rng(3)
        for _ in range(20):
            X = rng.normal(size=(20, 4))
            X[:, 1:] += 3.0
            r = requests.post(f"{srv.url}/serving/{dep}/invocations",
                              json={"dataframe_split": {"columns": COLUMNS, "data": X.tolist()}}, timeout=60)
            assert r.status_code == 200, r.text
        bad = requests.post(f"{srv.url}/serving/{dep}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1]]}}, timeout=60)
        assert bad.status_code == 400
        time.sleep(max(0.0, start + WINDOW_S + 0.3 - time.time()))
        r = requests.post(f"{srv.url}/api/v1/monitors/{monitor}/evaluate", timeout=120)
        assert r.status_code == 200, r.text
        yield {"url": srv.url, "model": model, "dep": dep, "monitor": monitor, "window_ms": int(start) * 1000}
    finally:
        srv.stop()


def visit(page: Page, url: str) -> Watcher:
    w = Watcher(page, url.split("/ui/")[0])
    page.goto(url)
    return w


def test_deployments_show_the_live_version_and_its_traffic(page: Page, world, shots):
    w = visit(page, f"{world['url']}/ui/deployments")
    row = page.locator("tr", has_text=world["dep"])
    expect(row).to_be_visible()
    expect(row.get_by_text("v1")).to_be_visible()
    expect(row.get_by_text("primary")).to_be_visible()
    cells = row.locator("td.num").all_inner_texts()
    assert int(cells[0]) == 21 and int(cells[2]) == 1, cells  # 20 answered + 1 refused; 1 error
    assert cells[3] != "–", "a p50 latency is shown"
    page.screenshot(path=str(shots / "slipway-deployments.png"), full_page=True)
    # The table refreshes itself (htmx) without a navigation.
    requests.post(f"{world['url']}/serving/{world['dep']}/invocations",
                  json={"dataframe_split": {"columns": COLUMNS, "data": [[0, 0, 0, 0]]}}, timeout=60)
    expect(row.locator("td.num").first).to_have_text("22", timeout=15_000)
    w.assert_clean()


def test_monitor_pages_chart_windows_and_open_a_drift_report(page: Page, world, shots):
    w = visit(page, f"{world['url']}/ui/monitors")
    row = page.locator("tr", has_text=world["monitor"])
    expect(row).to_be_visible()
    share = float(row.locator("td.num").nth(1).inner_text())
    api = requests.get(f"{world['url']}/api/v1/monitors/{world['monitor']}/windows", timeout=30).json()["windows"]
    window = next(x for x in api if x["start_ms"] == world["window_ms"])
    assert abs(share - window["series"]["drift.share"]) < 1e-4 and share >= 0.5
    row.get_by_role("link", name=world["monitor"]).click()
    page.wait_for_function("() => document.querySelectorAll('[data-chart][data-drawn] canvas').length >= 3")
    page.screenshot(path=str(shots / "slipway-monitor.png"), full_page=True)
    page.get_by_role("link", name=page.locator("table a[href*='/windows/']").first.inner_text()).first.click()
    expect(page.get_by_role("heading", name=f"Drift report: {world['monitor']}")).to_be_visible()
    for feature in ["velocity_z", "age_z", "merchant_z"]:
        expect(page.locator("tr", has_text=feature).get_by_text("yes")).to_be_visible()
    page.screenshot(path=str(shots / "slipway-drift-report.png"), full_page=True)
    w.assert_clean()


def test_alerts_show_their_delivery_attempts(page: Page, world, shots):
    deadline = time.monotonic() + 60
    while True:
        alerts = requests.get(f"{world['url']}/api/v1/monitors/{world['monitor']}/alerts", timeout=30).json()["alerts"]
        if alerts and alerts[0]["attempts"] >= 1:
            break
        assert time.monotonic() < deadline, alerts
        time.sleep(0.5)
    w = visit(page, f"{world['url']}/ui/alerts")
    row = page.locator("tr", has_text="drifting")
    expect(row).to_be_visible()
    expect(row.get_by_text(world["monitor"])).to_be_visible()
    assert int(row.locator("td.num").nth(2).inner_text()) >= 1
    assert row.locator("td").last.inner_text().strip(), "the last delivery error is shown"
    page.screenshot(path=str(shots / "slipway-alerts.png"), full_page=True)
    w.assert_clean()


def test_audit_filters_and_lineage_graph(page: Page, world, shots):
    w = visit(page, f"{world['url']}/ui/audit?action=set_alias&name={world['model']}")
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("pipeline-run:")
    expect(row).to_contain_text("champion")
    assert page.locator("tbody tr").count() == 1
    page.get_by_label("Action").fill("create_model_version")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr").first).to_contain_text("create_model_version")
    page.screenshot(path=str(shots / "slipway-audit.png"), full_page=True)

    page.locator("tbody tr").first.get_by_role("link", name="v1").click()
    graph = page.get_by_role("group", name="Lineage graph")
    expect(graph).to_contain_text("data/train.csv")
    expect(graph).to_contain_text("train")
    expect(graph).to_contain_text(f"{world['model']} v1")
    expect(graph).to_contain_text(world["dep"])
    expect(graph.get_by_text("@champion")).to_be_visible()
    page.screenshot(path=str(shots / "slipway-lineage.png"), full_page=True)
    w.assert_clean()


def test_pipeline_runs_and_their_steps(page: Page, world, shots):
    w = visit(page, f"{world['url']}/ui/pipelines")
    expect(page.get_by_role("heading", name="fraud-retrain")).to_be_visible()
    run_row = page.locator("tbody tr").first
    expect(run_row).to_contain_text("finished")
    run_row.locator("a").last.click()
    for step in ["prepare", "train", "gate"]:
        expect(page.locator("tr", has_text=step).first).to_contain_text("done")
    expect(page.locator("tr", has_text="gate")).to_contain_text("gate.passed=1")
    page.screenshot(path=str(shots / "slipway-pipeline-run.png"), full_page=True)
    # Links lead into the MLflow UI for the same runs.
    href = page.locator("tr", has_text="train").get_by_role("link").first.get_attribute("href")
    assert href.startswith("/#/experiments/") and "/runs/" in href
    w.assert_clean()


def test_keyboard_dark_mode_headers_and_bad_input(page: Page, world):
    visit(page, f"{world['url']}/ui/deployments")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Slipway"
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light != dark, (light, dark)

    r = requests.get(f"{world['url']}/ui/deployments", timeout=30)
    assert "script-src 'self'" in r.headers["Content-Security-Policy"] and r.headers["X-Content-Type-Options"] == "nosniff"
    for path, status in [("/ui/monitors/nope", 404), ("/ui/lineage/nope/1", 404), (f"/ui/monitors/{world['monitor']}/windows/x", 400),
                         ("/ui/pipelines/runs/nope", 404), ("/ui/assets/../../Cargo.toml", 404), ("/ui/assets/nope.js", 404)]:
        r = requests.get(world["url"] + path, timeout=30)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
    r = requests.get(f"{world['url']}/ui/audit", params={"actor": "<script>alert(1)</script>"}, timeout=30)
    assert r.status_code == 200 and "<script>alert(1)" not in r.text
