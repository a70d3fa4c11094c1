"""Bad requests answered in MLflow 3.17.2's own words, and create-experiment's local paths.

The messages are those ``mlflow server`` 3.17.2 answers for the same requests (its
``_validate_param_against_schema``, ``invalid_value``, ``missing_value`` and
``_validate_model_version``): scripts that match on MLflow's text keep working. Status and
error code stay 400 INVALID_PARAMETER_VALUE; no parser positions or internal text leak.
"""

from pathlib import Path

import pytest
import requests
from conftest import assert_json_error, unique
from mlflow.exceptions import MlflowException

HINT = " Hint: Value was of type '{}'. See the API docs for more information about request parameters."


def invalid(value_json, path, py_type):
    return f"Invalid value {value_json} for parameter '{path}' supplied: " + HINT.format(py_type)


def missing(path):
    return f"Missing value for required parameter '{path}'. See the API docs for more information about request parameters."


@pytest.fixture
def api(tracking):
    return tracking.url + "/api/2.0/mlflow"


@pytest.fixture
def run_id(client):
    eid = client.create_experiment(unique("wording"))
    return client.create_run(eid).info.run_id


def _cases(run_id):
    rid = run_id
    return [
        ("experiments/create", {"name": 123}, invalid("123", "name", "int")),
        ("experiments/create", {}, missing("name")),
        ("experiments/create", {"name": "x", "artifact_location": 9.0}, invalid("9.0", "artifact_location", "float")),
        ("experiments/create", {"name": "x", "tags": "5"}, invalid('"5"', "tags", "str")),
        ("runs/log-metric", {"run_id": 31, "key": "m", "value": 41, "timestamp": 59}, invalid("31", "run_id", "int")),
        ("runs/log-metric", {"run_id": rid, "key": 31, "value": 41, "timestamp": 59}, invalid("31", "key", "int")),
        ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 5, "step": "foo"},
         invalid('"foo"', "step", "str")),
        ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": "foo"},
         invalid('"foo"', "timestamp", "str")),
        ("runs/log-metric", {"run_id": None, "key": "m", "value": 1, "timestamp": 5}, missing("run_id")),
        ("runs/log-metric", {"run_id": rid, "key": None, "value": 1, "timestamp": 5}, missing("key")),
        ("runs/log-parameter", {"run_id": 31, "key": "p", "value": 41}, invalid("31", "run_id", "int")),
        ("runs/log-parameter", {"run_id": rid, "key": 31, "value": 41}, invalid("31", "key", "int")),
        ("runs/set-tag", {"run_id": rid, "key": "t", "value": 5}, invalid("5", "value", "int")),
        ("runs/log-batch", {"run_id": rid, "metrics": "foo"}, invalid('"foo"', "metrics", "str")),
        ("runs/log-batch", {"run_id": rid, "params": "foo"}, invalid('"foo"', "params", "str")),
        ("runs/log-batch", {"run_id": rid, "tags": "foo"}, invalid('"foo"', "tags", "str")),
        ("runs/log-batch", {"run_id": rid, "metrics": [{"key": "mae", "value": 2.5}]}, missing("metrics[0].timestamp")),
        ("runs/log-batch", {"run_id": rid, "metrics": [{"key": "a", "value": 1, "timestamp": 1},
                                                       {"key": "b", "value": 1, "timestamp": "x"}]},
         invalid('"x"', "metrics[1].timestamp", "str")),
        ("runs/log-batch", {"run_id": rid, "params": [{"value": "v"}]}, missing("params[0].key")),
        ("runs/log-batch", {"run_id": rid, "tags": [{"key": "k", "value": "v"}, {"key": ["x"]}]},
         invalid('["x"]', "tags[1].key", "list")),
    ]  # fmt: skip


def test_bad_bodies_get_mlflows_messages(api, run_id):
    for ep, body, want in _cases(run_id):
        r = requests.post(f"{api}/{ep}", json=body, timeout=30)
        err = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
        assert err["message"] == want, (ep, body, err["message"])
        assert "line 1" not in err["message"] and "column" not in err["message"]
    # nothing reached the run
    data = requests.get(f"{api}/runs/get", params={"run_id": run_id}, timeout=30).json()["run"].get("data", {})
    assert not data.get("metrics") and not data.get("params")


def test_bad_query_values_get_mlflows_messages(api):
    r = requests.get(f"{api}/registered-models/search", params={"max_results": "abc"}, timeout=30)
    err = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert err["message"] == invalid('"abc"', "max_results", "str")


def test_version_numbers_that_are_not_integers(api, client):
    name = unique("wording-version")
    client.create_registered_model(name)
    r = requests.get(f"{api}/model-versions/get", params={"name": name, "version": "something not correct"}, timeout=30)
    err = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert err["message"] == "Parameter 'version' must be an integer, got 'something not correct'."
    # an integer that names no version is "not found", as in MLflow, not a parse error
    r = requests.get(f"{api}/model-versions/get", params={"name": name, "version": "0"}, timeout=30)
    err = assert_json_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert err["message"] == f"Model Version (name={name}, version=0) not found"
    r = requests.post(f"{api}/registered-models/alias", json={"name": name, "alias": "a", "version": {"v": 1}}, timeout=30)
    err = assert_json_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert err["message"] == invalid('{"v":1}', "version", "dict")


def test_relative_artifact_location_is_made_absolute_on_the_server(client, tracking):
    """``mlflow server`` resolves a relative local path against its own working directory."""
    server_cwd = Path(f"/proc/{tracking.proc.pid}/cwd").resolve()
    eid = client.create_experiment(unique("rel"), artifact_location="my_location")
    assert client.get_experiment(eid).artifact_location == str(server_cwd / "my_location")
    eid = client.create_experiment(unique("rel-file"), artifact_location="file:sub/./dir/")
    assert client.get_experiment(eid).artifact_location == f"file://{server_cwd}/sub/dir"
    for kept in ["/abs/place", "s3://bucket/prefix"]:
        eid = client.create_experiment(unique("abs"), artifact_location=kept)
        assert client.get_experiment(eid).artifact_location == kept


def test_max_results_out_of_range_is_refused_in_mlflow_words(client):
    exp = client.create_experiment(unique("max-results-words"))
    for bad in (0, 123456789):
        with pytest.raises(MlflowException, match=rf"Invalid value {bad} for parameter 'max_results' supplied") as e:
            client.search_runs([exp], max_results=bad)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
