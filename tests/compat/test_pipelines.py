"""Pipelines: `slipway run` on a real project against a real `slipway server`.

    $SLIPWAY_BIN run [PIPELINE] [--step S] [--force] [--jobs N] [--json]
    $SLIPWAY_BIN pipelines list|show|runs NAME|logs RUN [--step S]|cancel RUN [--json]

Each step is a child run of the pipeline's parent run; the steps are plain Python scripts
that use the unmodified mlflow client, which logs into its step's run through MLFLOW_RUN_ID.
A step script appends its name to `executed.log` each time it really runs, so the tests see
what ran and what came from the cache without timing anything.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from conftest import slipway_bin, unique
from registry_helpers import LINEAGE, assert_no_panic, cli_json

PY = sys.executable


def write(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def slipway(server, *args, cwd=None, timeout=180):
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url, NO_COLOR="1")
    return subprocess.run(
        [slipway_bin(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def run_json(server, proj, *args, expect_rc=0):
    p = slipway(server, "run", str(proj), "--json", *args)
    assert_no_panic(p)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}"
    return json.loads(p.stdout), p.stderr


def executed(proj: Path) -> list[str]:
    log = proj / "executed.log"
    return log.read_text().split() if log.exists() else []


def states(summary) -> dict[str, str]:
    return {name: s["state"] for name, s in summary["steps"].items()}


STEP_SCRIPT = """
import json, os, sys, time
from pathlib import Path
name = os.environ["SLIPWAY_STEP"]
with open(Path(__file__).parent / "executed.log", "a") as f:
    f.write(name + "\\n")
"""


def make_project(root: Path, name: str) -> Path:
    """prepare -> train -> report, with params, a folder out, metrics and mlflow logging."""
    proj = root / name
    write(proj / "params.yaml", "train:\n  C: 0.5\n  seed: 7\n")
    write(proj / "data" / "raw.csv", "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    write(
        proj / "prepare.py",
        STEP_SCRIPT
        + """
rows = Path("data/raw.csv").read_text().splitlines()
Path("data/prepared").mkdir(parents=True, exist_ok=True)
Path("data/prepared/train.csv").write_text("\\n".join(rows[:31]) + "\\n")
Path("data/prepared/holdout.csv").write_text("\\n".join([rows[0]] + rows[31:]) + "\\n")
print("prepared", len(rows) - 1, "rows")
""",
    )
    write(
        proj / "train.py",
        STEP_SCRIPT
        + """
import mlflow
C = float(sys.argv[1])
rows = Path("data/prepared/train.csv").read_text().splitlines()[1:]
mlflow.log_metric("rows_seen", len(rows))
mlflow.log_param("from_script", "yes")
Path("model.json").write_text(json.dumps({"C": C, "rows": len(rows)}))
Path("metrics.json").write_text(json.dumps({"accuracy": 0.75, "loss": {"train": 0.5}}))
print("trained with C", C)
""",
    )
    write(
        proj / "report.py",
        STEP_SCRIPT
        + """
model = json.loads(Path("model.json").read_text())
Path("report.txt").write_text(f"C={model['C']} rows={model['rows']}\\n")
""",
    )
    write(
        proj / "slipway.yaml",
        f"""
        pipeline: {name}
        steps:
          prepare:
            cmd: {PY} prepare.py
            deps: [prepare.py, data/raw.csv]
            outs: [data/prepared]
          train:
            cmd: {PY} train.py ${{train.C}}
            deps: [train.py, data/prepared/train.csv]
            params: [train.seed]
            outs: [model.json]
            metrics: metrics.json
          report:
            cmd: {PY} report.py
            deps: [report.py, model.json]
            outs: [report.txt]
        """,
    )
    return proj


def child_runs(client, summary):
    parent = summary["run_id"]
    run = client.get_run(parent)
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    return run, {r.data.tags["slipway.step"]: r for r in children}


@pytest.fixture
def proj(tmp_path):
    return make_project(tmp_path, unique("pipe"))


def test_a_pipeline_runs_and_records_every_step_as_a_child_run(server, client, proj):
    summary, err = run_json(server, proj)
    assert summary["status"] == "finished", summary
    assert states(summary) == {"prepare": "done", "train": "done", "report": "done"}
    assert executed(proj) == ["prepare", "train", "report"]
    assert (proj / "report.txt").read_text() == "C=0.5 rows=30\n"
    assert "prepared 40 rows" in err, "step output is streamed to the terminal"

    parent, steps = child_runs(client, summary)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["slipway.pipeline"] == proj.name
    assert parent.data.tags["slipway.summary"] == "3 ran"
    train = steps["train"]
    assert train.info.status == "FINISHED"
    # logged by the unmodified mlflow client inside the step, into the step's own run
    assert train.data.metrics["rows_seen"] == 30
    assert train.data.params["from_script"] == "yes"
    # recorded by the runner: params, the metrics file, the cache key, the outs manifest
    assert train.data.params["train.C"] == "0.5" and train.data.params["train.seed"] == "7"
    assert train.data.metrics["accuracy"] == 0.75 and train.data.metrics["loss.train"] == 0.5
    assert len(train.data.tags["slipway.cache_key"]) == 64
    assert len(train.data.tags["slipway.outs"]) == 64
    # the log is an artifact of the step's run
    log = mlflow.artifacts.load_text(f"runs:/{train.info.run_id}/logs/train.log")
    assert "trained with C 0.5" in log and "--- attempt 1:" in log
    # deps are the run's datasets, with their digests
    inputs = {d.dataset.name: d.dataset for d in train.inputs.dataset_inputs}
    assert set(inputs) == {"train.py", "data/prepared/train.csv"}
    assert all(len(d.digest) == 12 for d in inputs.values())
    assert json.loads(inputs["train.py"].source)["sha256"].startswith(inputs["train.py"].digest)


def test_unchanged_rerun_runs_nothing_and_a_changed_dep_reruns_its_downstream(server, client, proj):
    first, _ = run_json(server, proj)
    runs_before = len(client.search_runs([client.get_run(first["run_id"]).info.experiment_id]))

    again, err = run_json(server, proj)
    assert again["status"] == "up_to_date" and again["run_id"] is None
    assert set(states(again).values()) == {"cached"}
    assert executed(proj) == ["prepare", "train", "report"], "nothing ran again"
    exp = client.get_run(first["run_id"]).info.experiment_id
    assert len(client.search_runs([exp])) == runs_before, "an up-to-date check records nothing"

    # touching train.py reruns train; its model.json comes out the same, so report is a hit
    (proj / "train.py").write_text((proj / "train.py").read_text() + "\n# tweak\n")
    third, _ = run_json(server, proj)
    assert states(third) == {"prepare": "cached", "train": "done", "report": "cached"}
    assert executed(proj)[3:] == ["train"]
    _, steps = child_runs(client, third)
    assert steps["prepare"].data.tags["slipway.cached_from"] == first["steps"]["prepare"]["run_id"]

    # a param the command reads changes train's key and its out, so report reruns too; a
    # param no step names changes nothing
    (proj / "params.yaml").write_text("train:\n  C: 0.25\n  seed: 7\n  unused: 1\n")
    fourth, _ = run_json(server, proj)
    assert states(fourth) == {"prepare": "cached", "train": "done", "report": "done"}
    assert executed(proj)[4:] == ["train", "report"]
    assert (proj / "report.txt").read_text() == "C=0.25 rows=30\n"


def test_deleted_outs_are_restored_or_rerun(server, client, proj):
    first, _ = run_json(server, proj)
    # deleted from the workspace: restored from the store, nothing runs
    (proj / "model.json").unlink()
    summary, _ = run_json(server, proj)
    assert summary["steps"]["train"] == {
        "state": "cached",
        "run_id": summary["steps"]["train"]["run_id"],
        "from": first["steps"]["train"]["run_id"],
        "restored": True,
    }
    assert json.loads((proj / "model.json").read_text())["C"] == 0.5
    assert executed(proj) == ["prepare", "train", "report"]

    # deleted from the store as well: the hit is refused and the step runs again
    model_hash = json.loads((proj / ".slipway" / f"{proj.name}.lock.json").read_text())["train"]["outs"]["model.json"]
    blob = server.data_dir / "artifacts" / "slipway-cache" / "sha256" / model_hash[:2] / model_hash
    assert blob.exists(), list((server.data_dir / "artifacts").iterdir())
    blob.unlink()
    (proj / "model.json").unlink()
    summary, err = run_json(server, proj)
    assert states(summary)["train"] == "done"
    assert "were deleted from the store; running" in err
    assert executed(proj) == ["prepare", "train", "report", "train"]


def test_a_failed_step_blocks_its_downstream_and_a_rerun_resumes_there(server, client, proj):
    (proj / "fail").write_text("")
    text = (proj / "train.py").read_text().replace(
        "import mlflow", "import mlflow\nif Path('fail').exists():\n    print('boom'); sys.exit(4)"
    )
    (proj / "train.py").write_text(text)
    summary, _ = run_json(server, proj, expect_rc=1)
    assert summary["status"] == "failed"
    assert summary["steps"]["train"]["state"] == "failed"
    assert summary["steps"]["train"]["reason"] == "exited with status 4"
    assert summary["steps"]["report"] == {"state": "blocked", "by": "train"}
    parent, steps = child_runs(client, summary)
    assert parent.info.status == "FAILED" and steps["train"].info.status == "FAILED"
    assert "boom" in mlflow.artifacts.load_text(f"runs:/{steps['train'].info.run_id}/logs/train.log")

    (proj / "fail").unlink()
    summary, _ = run_json(server, proj)
    assert states(summary) == {"prepare": "cached", "train": "done", "report": "done"}
    assert executed(proj) == ["prepare", "train", "train", "report"]


def test_kill_9_of_the_runner_then_rerun_resumes_without_redoing_finished_steps(server, client, tmp_path):
    proj = tmp_path / "killed"
    write(proj / "a.py", STEP_SCRIPT + "Path('a.out').write_text('a')\n")
    write(
        proj / "b.py",
        STEP_SCRIPT
        + """
Path("b.pid").write_text(str(os.getpid()))
while Path("hold").exists():
    time.sleep(0.05)
Path("b.out").write_text(Path("a.out").read_text() + "b")
""",
    )
    write(
        proj / "slipway.yaml",
        f"""
        steps:
          a: {{cmd: {PY} a.py, deps: [a.py], outs: [a.out]}}
          b: {{cmd: {PY} b.py, deps: [b.py, a.out], outs: [b.out]}}
        """,
    )
    (proj / "hold").write_text("")
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url)
    runner = subprocess.Popen([slipway_bin(), "run", str(proj)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (proj / "b.pid").exists():
            assert time.monotonic() < deadline and runner.poll() is None, "step b never started"
            time.sleep(0.05)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
    # The orphaned step is the user's to stop (a killed runner cannot); stop it.
    os.kill(int((proj / "b.pid").read_text()), signal.SIGKILL)
    (proj / "hold").unlink()
    assert executed(proj) == ["a", "b"]

    summary, err = run_json(server, proj)
    assert states(summary) == {"a": "cached", "b": "done"}
    assert executed(proj) == ["a", "b", "b"], "a finished before the kill and is not redone"
    assert (proj / "b.out").read_text() == "ab"
    # The killed runner's runs are closed, not left RUNNING forever.
    parent, _ = child_runs(client, summary)
    exp = parent.info.experiment_id
    earlier = [r for r in client.search_runs([exp], "tags.`slipway.pipeline` = 'killed'") if r.info.run_id != summary["run_id"]]
    assert len(earlier) == 1 and earlier[0].info.status == "KILLED", earlier
    assert earlier[0].data.tags["slipway.status"] == "abandoned"
    b_run = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{earlier[0].info.run_id}' AND tags.`slipway.step` = 'b'")
    assert b_run[0].info.status == "KILLED", b_run[0].info
    assert "left running by a runner that died" in err


def test_retries_timeouts_when_and_parallel_steps(server, client, tmp_path):
    proj = tmp_path / "behaviours"
    write(
        proj / "flaky.py",
        STEP_SCRIPT
        + """
n = executed_count = Path("executed.log").read_text().split().count("flaky")
if n < 2:
    print("flaky attempt", n, "fails"); sys.exit(1)
Path("flaky.out").write_text("ok")
""",
    )
    # Two independent steps that each wait for the other to have started: they finish only
    # when run side by side.
    for me, other in (("left", "right"), ("right", "left")):
        write(
            proj / f"{me}.py",
            STEP_SCRIPT
            + f"""
Path("{me}.started").write_text("")
deadline = time.time() + 30
while not Path("{other}.started").exists():
    if time.time() > deadline:
        sys.exit("{other} never ran beside {me}")
    time.sleep(0.02)
Path("{me}.out").write_text("{me}")
""",
        )
    write(proj / "params.yaml", "publish: false\n")
    write(
        proj / "slipway.yaml",
        f"""
        steps:
          flaky: {{cmd: {PY} flaky.py, deps: [flaky.py], outs: [flaky.out], retry: {{max: 2, backoff: 100ms}}}}
          hang: {{cmd: sleep 60, timeout: 1s}}
          after_hang: {{cmd: echo never, after: [hang]}}
          left: {{cmd: {PY} left.py, deps: [left.py], outs: [left.out]}}
          right: {{cmd: {PY} right.py, deps: [right.py], outs: [right.out]}}
          publish: {{cmd: echo publishing, when: params.publish == true, after: [flaky]}}
        """,
    )
    summary, err = run_json(server, proj, "--jobs", "3", expect_rc=1)
    st = summary["steps"]
    assert st["flaky"]["state"] == "done"
    assert executed(proj).count("flaky") == 2
    assert "retrying in 0.1 s" in err
    assert st["hang"]["state"] == "failed" and st["hang"]["reason"] == "timed out after 1.0 s"
    assert st["after_hang"] == {"state": "blocked", "by": "hang"}
    assert st["left"]["state"] == "done" and st["right"]["state"] == "done"
    assert st["publish"] == {"state": "skipped", "reason": "when: params.publish == true is false"}
    _, steps = child_runs(client, summary)
    log = mlflow.artifacts.load_text(f"runs:/{steps['flaky'].info.run_id}/logs/flaky.log")
    assert "--- attempt 1:" in log and "--- attempt 2:" in log and "flaky attempt 1 fails" in log


def test_cancel_stops_the_running_step(server, client, tmp_path):
    proj = tmp_path / "cancel"
    write(proj / "slipway.yaml", "steps:\n  slow: {cmd: 'echo started; sleep 120', cache: false}\n")
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url)
    runner = subprocess.Popen(
        [slipway_bin(), "run", str(proj), "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        parent = None
        deadline = time.monotonic() + 60
        while parent is None:
            assert time.monotonic() < deadline and runner.poll() is None
            found = client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                f"tags.`slipway.pipeline` = 'cancel' AND attributes.status = 'RUNNING'",
            )
            parent = found[0].info.run_id if found else None
            time.sleep(0.1)
        p = slipway(server, "pipelines", "cancel", parent)
        assert p.returncode == 0, p.stderr
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "cancelled" and summary["steps"]["slow"]["state"] == "cancelled"
    _, steps = child_runs(client, summary)
    assert client.get_run(parent).info.status == "KILLED" and steps["slow"].info.status == "KILLED"
    p = slipway(server, "pipelines", "cancel", steps["slow"].info.run_id)
    assert p.returncode == 1 and "is not a pipeline run" in p.stderr


def test_pipelines_list_show_runs_and_logs(server, client, proj):
    first, _ = run_json(server, proj)
    listed = json.loads(slipway(server, "pipelines", "list", "--json").stdout)
    mine = [p for p in listed if p["name"] == proj.name]
    assert len(mine) == 1 and mine[0]["runs"] == 1
    assert mine[0]["latest"]["info"]["run_id"] == first["run_id"]

    shown = json.loads(slipway(server, "pipelines", "show", str(proj), "--json").stdout)
    assert [s["name"] for s in shown["steps"]] == ["prepare", "train", "report"]
    assert shown["steps"][1]["needs"] == ["prepare"] and shown["steps"][1]["params"] == ["train.C", "train.seed"]

    runs = json.loads(slipway(server, "pipelines", "runs", proj.name, "--json").stdout)
    assert [r["info"]["run_id"] for r in runs] == [first["run_id"]]
    p = slipway(server, "pipelines", "runs", proj.name)
    assert first["run_id"] in p.stdout and "3 ran" in p.stdout

    p = slipway(server, "pipelines", "logs", first["run_id"], "--step", "prepare")
    assert p.returncode == 0 and "prepared 40 rows" in p.stdout and "trained" not in p.stdout


def test_lineage_reaches_the_data_through_the_step_run(server, client, tmp_path):
    proj = tmp_path / "lineage"
    model = unique("piped-model")
    write(proj / "data.csv", "x,y\n1,0\n2,1\n3,0\n4,1\n")
    write(
        proj / "train.py",
        f"""
        import mlflow, numpy as np
        from sklearn.linear_model import LogisticRegression
        data = np.loadtxt("data.csv", delimiter=",", skiprows=1)
        clf = LogisticRegression().fit(data[:, :1], data[:, 1])
        # A training script as written for MLflow: start_run() resumes the step's run
        # (MLFLOW_RUN_ID), so the model and its version belong to it.
        with mlflow.start_run():
            mlflow.log_metric("train_rows", len(data))
            mlflow.sklearn.log_model(clf, name="model", registered_model_name="{model}")
        """,
    )
    write(proj / "slipway.yaml", f"steps:\n  train: {{cmd: {PY} train.py, deps: [train.py, data.csv]}}\n")
    summary, _ = run_json(server, proj)
    step_run = summary["steps"]["train"]["run_id"]
    import requests

    got = requests.get(f"{server.url}{LINEAGE}", params={"name": model, "version": "1"}, timeout=30).json()
    assert got["run_id"] == step_run
    digests = {d["name"]: d["digest"] for d in got["datasets"]}
    assert set(digests) == {"train.py", "data.csv"}
    by_digest = requests.get(f"{server.url}{LINEAGE}/datasets", params={"digest": digests["data.csv"]}, timeout=30).json()
    assert [(v["name"], v["version"]) for v in by_digest["model_versions"]] == [(model, "1")]


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("steps: [a\n", "slipway.yaml:"),
        ("steps:\n  a: {cmd: x, deps: [b.out], outs: [a.out]}\n  b: {cmd: y, deps: [a.out], outs: [b.out]}\n",
         "dependency cycle: "),
        ("steps:\n  a: {cmd: x, deps: [nowhere.csv]}\n", "slipway.yaml:2 (step 'a'): 'nowhere.csv' is neither in the project"),
        ("steps:\n  a: {cmd: x, outs: [o]}\n  b: {cmd: y, outs: [o]}\n",
         "slipway.yaml:3 (step 'b'): 'o' is also an out of step 'a' (2)"),
        ("steps:\n  a: {cmd: x, dep: [q]}\n", "slipway.yaml:2 (step 'a'): unknown field `dep`"),
        ("steps:\n  a: {cmd: 'x ${nope}'}\n", "'${nope}' is not in the params file"),
        ("steps:\n  a: {cmd: x, outs: [../../etc/x]}\n", "leaves the project folder"),
    ],
)
def test_bad_pipeline_files_get_clear_errors_and_record_nothing(server, client, tmp_path, yaml_text, expected):
    proj = tmp_path / "bad"
    write(proj / "slipway.yaml", yaml_text)
    before = len(client.search_experiments())
    p = slipway(server, "run", str(proj))
    assert_no_panic(p)
    assert p.returncode == 1
    assert expected in p.stderr, p.stderr
    assert len(client.search_experiments()) == before


def test_gc_keeps_the_cache_live_runs_need_and_collects_the_rest(private_server, tmp_path):
    srv = private_server
    srv.use()
    client = mlflow.MlflowClient(srv.url)
    proj = make_project(tmp_path, unique("gc-pipe"))
    first, _ = run_json(srv, proj)
    lock = proj / ".slipway" / f"{proj.name}.lock.json"
    old_model = json.loads(lock.read_text())["train"]["outs"]["model.json"]
    prepared = json.loads(lock.read_text())["prepare"]["outs"]["data/prepared"]
    (proj / "params.yaml").write_text("train:\n  C: 0.25\n  seed: 7\n")
    second, _ = run_json(srv, proj)
    new_model = json.loads(lock.read_text())["train"]["outs"]["model.json"]
    assert new_model != old_model

    def blob(h):
        return srv.data_dir / "artifacts" / "slipway-cache" / "sha256" / h[:2] / h

    cache_files = lambda: sorted(p.name for p in (srv.data_dir / "artifacts" / "slipway-cache").rglob("*") if p.is_file())
    before = cache_files()
    # The first run goes; its prepare result is still the second run's (cached) prepare.
    for run_id in [first["run_id"], *(s["run_id"] for s in first["steps"].values())]:
        client.delete_run(run_id)
    dry = cli_json(slipway_bin(), "gc", "--older-than", "0s", "--dry-run", "--json", "--data-dir", str(srv.data_dir))
    assert dry["cache_blobs"] >= 3 and cache_files() == before, "a dry run removes nothing"
    report = cli_json(slipway_bin(), "gc", "--older-than", "0s", "--json", "--data-dir", str(srv.data_dir))
    assert report["cache_blobs"] == dry["cache_blobs"] and report["cache_bytes"] > 0
    assert not blob(old_model).exists(), "the C=0.5 model.json only the deleted run named"
    assert blob(new_model).exists()
    manifest = json.loads(lock.read_text())["prepare"]["manifest"]
    assert blob(manifest).exists()
    prepared_files = json.loads(blob(manifest).read_text())["data/prepared"]["files"]
    assert all(blob(h).exists() for _, h, _ in prepared_files), "prepare's outs are kept for the live cached run"
    assert prepared  # the folder's own hash names no blob; its files do
    # Nothing the live runs need was lost: with the workspace gone, a rerun restores it all.
    shutil.rmtree(proj / "data" / "prepared")
    (proj / "model.json").unlink()
    summary, _ = run_json(srv, proj)
    assert set(states(summary).values()) == {"cached"}
    assert (proj / "report.txt").read_text() == "C=0.25 rows=30\n"


def test_a_step_reads_a_data_version_and_publishes_its_outs_as_one(server, client, tmp_path):
    raw, clean = unique("raw-events"), unique("clean-events")
    src = tmp_path / "src"
    write(src / "a.csv", "x,y\n1,2\n3,4\n")
    write(src / "b.csv", "x,y\n5,6\n")
    v1 = json.loads(slipway(server, "data", "add", raw, str(src / "a.csv"), str(src / "b.csv"), "--alias", "train",
                            "--json").stdout)["version"]
    write(src / "a.csv", "x,y\n1,2\n3,4\n7,8\n")
    v2 = json.loads(slipway(server, "data", "add", raw, str(src / "a.csv"), "--json").stdout)["version"]

    proj = tmp_path / "dataproj"
    write(proj / "prepare.py", f"""
        from pathlib import Path
        rows = []
        for f in sorted(Path("data/{raw}").glob("*.csv")):
            rows += f.read_text().splitlines()[1:]
        Path("clean").mkdir(exist_ok=True)
        Path("clean/rows.csv").write_text("x,y\\n" + "".join(r + "\\n" for r in rows))
        with open("executed.log", "a") as log:
            log.write("prepare\\n")
        """)
    write(proj / "slipway.yaml", f"""
        steps:
          prepare:
            cmd: {PY} prepare.py
            deps: [prepare.py, "data:{raw}@train"]
            outs: [clean]
            publish: {clean}
        """)

    first, _ = run_json(server, proj)
    assert states(first) == {"prepare": "done"}
    # The step saw exactly the version the alias named, and its outs became a version.
    assert sorted(p.name for p in (proj / "data" / raw).iterdir()) == ["a.csv", "b.csv"]
    assert (proj / "clean" / "rows.csv").read_text() == "x,y\n1,2\n3,4\n5,6\n"
    published = json.loads(slipway(server, "data", "show", f"{clean}@latest", "--json").stdout)
    assert published["version"]["version"] == 1 and [f["path"] for f in published["manifest"]["files"]] == ["clean/rows.csv"]
    _, steps = child_runs(client, first)
    run = steps["prepare"]
    tags = {t["key"]: t["value"] for t in published["version"]["tags"]}
    assert tags["slipway.step_run"] == run.info.run_id and tags["slipway.pipeline_run"] == first["run_id"]
    assert run.data.tags["slipway.published"] == f"{clean}@1"
    # The data dep is the step run's dataset input, its digest a prefix of the manifest.
    [dep] = [d.dataset for d in run.inputs.dataset_inputs if d.dataset.name.startswith("data:")]
    assert dep.name == f"data:{raw}@train" and v1["manifest"].startswith(dep.digest)

    again, _ = run_json(server, proj)
    assert states(again) == {"prepare": "cached"} and executed(proj) == ["prepare"]

    # The alias moves: the step runs on the new version (the file it lacks is gone) and
    # publishes a second version; moved back, the first result is reused.
    slipway(server, "data", "alias", raw, "train", str(v2["version"]))
    third, _ = run_json(server, proj)
    assert states(third) == {"prepare": "done"}
    assert sorted(p.name for p in (proj / "data" / raw).iterdir()) == ["a.csv"]
    assert (proj / "clean" / "rows.csv").read_text() == "x,y\n1,2\n3,4\n7,8\n"
    versions = json.loads(slipway(server, "data", "versions", clean, "--json").stdout)
    assert [v["version"] for v in versions] == [2, 1]
    slipway(server, "data", "alias", raw, "train", "1")
    fourth, _ = run_json(server, proj)
    assert states(fourth)["prepare"] == "cached" and executed(proj) == ["prepare", "prepare"]
    assert len(json.loads(slipway(server, "data", "versions", clean, "--json").stdout)) == 2

    # The data folder is the version's: its stale files go, but never through a link.
    outside = tmp_path / "outside"
    write(outside / "keep.txt", "not the pipeline's\n")
    shutil.rmtree(proj / "data" / raw)
    (proj / "data" / raw).symlink_to(outside, target_is_directory=True)
    linked, _ = run_json(server, proj, "--force", expect_rc=1)
    assert states(linked) == {"prepare": "failed"}
    assert "symbolic link" in linked["steps"]["prepare"]["reason"], linked
    assert (outside / "keep.txt").read_text() == "not the pipeline's\n"


def test_bad_data_deps_are_refused_with_the_step_named(server, tmp_path):
    proj = tmp_path / "badproj"
    write(proj / "slipway.yaml", """
        steps:
          prepare:
            cmd: "true"
            deps: ["data:no spaces@1"]
        """)
    p = slipway(server, "run", str(proj))
    assert p.returncode != 0 and "prepare" in p.stderr and "data:NAME@VERSION" in p.stderr, p.stderr
    write(proj / "slipway.yaml", """
        steps:
          prepare:
            cmd: "true"
            outs: [x]
            publish: "../escape"
        """)
    p = slipway(server, "run", str(proj))
    assert p.returncode != 0 and "no data set name" in p.stderr, p.stderr
    missing = unique("missing")
    write(proj / "slipway.yaml", f"""
        steps:
          prepare:
            cmd: "true"
            deps: ["data:{missing}@1"]
        """)
    summary, _ = run_json(server, proj, expect_rc=1)
    assert states(summary) == {"prepare": "failed"}
    assert missing in summary["steps"]["prepare"]["reason"], summary
