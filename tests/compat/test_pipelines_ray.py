"""`slipway run --executor ray` against a real Ray head (`ray start --head` from .venv-ray, on
loopback), driven only through Ray's Jobs REST API: the same pipeline as test_pipelines.py,
with the same records, its outs sent back through the blob store, and what Ray does to a job
(a failure, a timeout, a job stopped behind our back) reported on the step.
"""

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from conftest import free_port, slipway_bin
from registry_helpers import assert_no_panic
from test_pipelines import child_runs, make_project, states, write

RAY_BIN = Path(__file__).resolve().parents[2] / ".venv-ray" / "bin"


@pytest.fixture(scope="module")
def ray_head():
    if not (RAY_BIN / "ray").exists():
        pytest.fail(f"{RAY_BIN / 'ray'} missing: scripts/ray-env.sh installs it")
    env = dict(os.environ, PATH=f"{RAY_BIN}{os.pathsep}{os.environ['PATH']}", RAY_USAGE_STATS_ENABLED="0")
    temp = Path(f"/tmp/ray-slipway-{uuid.uuid4().hex[:8]}")
    dashboard = free_port()
    start = [
        str(RAY_BIN / "ray"), "start", "--head", "--port", str(free_port()), "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard), "--num-cpus", "2", "--include-dashboard", "true",
        "--disable-usage-stats", "--temp-dir", str(temp),
    ]
    p = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/api/version", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the Ray dashboard never answered"
        time.sleep(0.5)
    yield url
    subprocess.run([str(RAY_BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


def ray_run(server, ray_head, proj, *args, expect_rc=0, timeout=300):
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url, NO_COLOR="1")
    p = subprocess.run(
        [slipway_bin(), "run", str(proj), "--json", "--executor", "ray", "--ray-address", ray_head, *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env,
    )
    assert_no_panic(p)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    return json.loads(p.stdout), p.stderr


def test_the_pipeline_runs_on_ray_with_the_same_records(server, client, ray_head, tmp_path):
    proj = make_project(tmp_path, f"ray-{uuid.uuid4().hex[:8]}")
    summary, err = ray_run(server, ray_head, proj)
    assert summary["status"] == "finished", summary
    assert states(summary) == {"prepare": "done", "train": "done", "report": "done"}
    # The outs came back from the Ray job's working dir into the project.
    assert (proj / "report.txt").read_text() == "C=0.5 rows=30\n"
    assert sorted(p.name for p in (proj / "data" / "prepared").iterdir()) == ["holdout.csv", "train.csv"]
    assert "prepared 40 rows" in err

    parent, steps = child_runs(client, summary)
    assert parent.data.tags["slipway.executor"] == "ray" and parent.info.status == "FINISHED"
    train = steps["train"]
    assert train.data.tags["slipway.executor"] == "ray"
    assert train.data.metrics["rows_seen"] == 30, "logged by the mlflow client inside the Ray job"
    assert train.data.metrics["accuracy"] == 0.75 and train.data.params["train.C"] == "0.5"
    assert "trained with C 0.5" in mlflow.artifacts.load_text(f"runs:/{train.info.run_id}/logs/train.log")
    # Ray knows each attempt by the step run's id.
    job = requests.get(f"{ray_head}/api/jobs/{train.info.run_id}-1", timeout=30).json()
    assert job["status"] == "SUCCEEDED"

    # Unchanged: nothing runs. Touched: only what changed runs, on Ray again.
    again, _ = ray_run(server, ray_head, proj)
    assert again["status"] == "up_to_date"
    (proj / "train.py").write_text((proj / "train.py").read_text() + "\n# tweak\n")
    third, _ = ray_run(server, ray_head, proj)
    assert states(third) == {"prepare": "cached", "train": "done", "report": "cached"}


def test_failures_timeouts_and_a_job_stopped_behind_our_back(server, client, ray_head, tmp_path):
    proj = tmp_path / "ray-bad"
    write(
        proj / "slipway.yaml",
        """
        steps:
          fails: {cmd: 'echo about to fail; exit 4'}
          hangs: {cmd: 'sleep 120', timeout: 3s}
          victim: {cmd: 'echo victim started; sleep 120'}
        """,
    )
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url)
    runner = subprocess.Popen(
        [slipway_bin(), "run", str(proj), "--json", "--jobs", "3", "--executor", "ray", "--ray-address", ray_head],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Someone stops the victim's job on the cluster: the step must not wait forever.
        deadline = time.monotonic() + 120
        victim = None
        while victim is None:
            assert time.monotonic() < deadline and runner.poll() is None, "the victim's job never ran"
            jobs = requests.get(f"{ray_head}/api/jobs/", timeout=30).json()
            victim = next(
                (j for j in jobs if (j.get("metadata") or {}).get("slipway_step") == "victim" and j["status"] == "RUNNING"),
                None,
            )
            time.sleep(0.3)
        r = requests.post(f"{ray_head}/api/jobs/{victim['submission_id']}/stop", timeout=30)
        assert r.status_code == 200, r.text
        out, err = runner.communicate(timeout=300)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 1, err[-3000:]
    st = json.loads(out)["steps"]
    assert st["fails"]["state"] == "failed" and st["fails"]["reason"] == "exited with status 4"
    assert st["hangs"]["state"] == "failed" and st["hangs"]["reason"] == "timed out after 3.0 s"
    assert st["victim"]["state"] == "failed" and "lost by the executor" in st["victim"]["reason"], st["victim"]
    hung = requests.get(f"{ray_head}/api/jobs/{st['hangs']['run_id']}-1", timeout=30).json()
    assert hung["status"] == "STOPPED", "the timed-out job was stopped on the cluster"
    assert "about to fail" in mlflow.artifacts.load_text(f"runs:/{st['fails']['run_id']}/logs/fails.log")
