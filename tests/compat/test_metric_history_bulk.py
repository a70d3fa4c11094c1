"""The metric history of several runs at once (`metrics/get-history-bulk`), which MLflow's UI
asks for to draw one chart over many runs."""

import requests
from conftest import unique

BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"


def _bulk(server, **params):
    return requests.get(server.url + BULK, params=params)


def _two_runs_with_loss(client):
    exp = client.create_experiment(unique("bulk-history"))
    first = client.create_run(exp).info.run_id
    second = client.create_run(exp).info.run_id
    # logged out of order: the answer is ordered by timestamp, then step, then value
    for run_id, offset in ((first, 0.0), (second, 100.0)):
        client.log_metric(run_id, "loss", 3.0 + offset, timestamp=20, step=1)
        client.log_metric(run_id, "loss", 2.0 + offset, timestamp=10, step=5)
        client.log_metric(run_id, "loss", 1.0 + offset, timestamp=10, step=5)
        client.log_metric(run_id, "other", 9.0, timestamp=1, step=0)
    return first, second


def test_points_of_each_run_carry_its_id_in_run_then_time_order(tracking, client):
    first, second = _two_runs_with_loss(client)
    r = _bulk(tracking, run_id=[second, first], metric_key="loss")
    assert r.status_code == 200
    points = r.json()["metrics"]
    by_run = sorted([first, second])
    expect = []
    for run_id in by_run:
        offset = 0.0 if run_id == first else 100.0
        expect += [
            {"key": "loss", "value": 1.0 + offset, "timestamp": 10, "step": 5, "run_id": run_id},
            {"key": "loss", "value": 2.0 + offset, "timestamp": 10, "step": 5, "run_id": run_id},
            {"key": "loss", "value": 3.0 + offset, "timestamp": 20, "step": 1, "run_id": run_id},
        ]
    assert points == expect


def test_max_results_caps_the_points_and_unknown_runs_add_nothing(tracking, client):
    first, _ = _two_runs_with_loss(client)
    r = _bulk(tracking, run_id=[first, "no-such-run"], metric_key="loss", max_results=2)
    assert r.status_code == 200
    assert [p["value"] for p in r.json()["metrics"]] == [1.0, 2.0]
    r = _bulk(tracking, run_id="no-such-run", metric_key="loss")
    assert r.status_code == 200
    assert r.json()["metrics"] == []


def test_the_api_prefix_serves_it_too(tracking, client):
    first, _ = _two_runs_with_loss(client)
    r = requests.get(
        tracking.url + "/api/2.0/mlflow/metrics/get-history-bulk", params={"run_id": first, "metric_key": "other"}
    )
    assert r.status_code == 200
    assert r.json()["metrics"] == [{"key": "other", "value": 9.0, "timestamp": 1, "step": 0, "run_id": first}]


def test_requests_without_runs_or_key_or_with_too_many_runs_are_refused(tracking):
    cases = [
        ({"metric_key": "loss"}, "GetMetricHistoryBulk request must specify at least one run_id."),
        ({"run_id": [f"r{i}" for i in range(101)], "metric_key": "loss"}, "cannot specify more than 100 run_ids"),
        ({"run_id": "r1"}, "GetMetricHistoryBulk request must specify a metric_key."),
    ]
    for params, message in cases:
        r = _bulk(tracking, **params)
        assert r.status_code == 400, params
        body = r.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in body["message"]
