"""The `slipway` binary's own commands: `models ...` (registry CLI) and `gc` (garbage collection).

    $SLIPWAY_BIN models list|show NAME|versions NAME|alias set NAME ALIAS VERSION|lineage NAME VERSION
                 [--json] --tracking-uri http://127.0.0.1:PORT
    $SLIPWAY_BIN gc --older-than DURATION [--dry-run] [--json] --data-dir DIR
"""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from conftest import SlipwayServer, free_port, slipway_bin, unique
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from registry_helpers import (
    LINEAGE,
    Api,
    assert_no_panic,
    cli_json,
    files_under,
    fit_models,
    log_sklearn,
    new_version,
    run_cli,
)

COUNT_KEYS = ("experiments", "runs", "logged_models", "model_versions", "artifact_files", "artifact_bytes")


# --------------------------------------------------------------------------------------
# models CLI
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reg_cli(private_server):
    """A dedicated server holding exactly two registered models."""
    private_server.use()
    url = private_server.url
    client = mlflow.MlflowClient(tracking_uri=url)
    eid = client.create_experiment(unique("cli"))
    run = client.create_run(eid, run_name="cli-run")
    rid = run.info.run_id
    client.log_param(rid, "alpha", "0.3")
    client.log_metric(rid, "acc", 0.75, step=2)
    lm = client.create_logged_model(eid, name="m", source_run_id=rid)
    a, b = unique("cli-a"), unique("cli-b")
    client.create_registered_model(a)
    new_version(client, a, lm.model_id)
    new_version(client, a, lm.model_id)
    client.set_registered_model_alias(a, "champion", "1")
    client.create_registered_model(b, description="the b model", tags={"team": "x"})
    return SimpleNamespace(url=url, client=client, api=Api(url), a=a, b=b, rid=rid, mid=lm.model_id)


def _models(reg_cli, *args, json_out=True):
    extra = ["--json"] if json_out else []
    return [slipway_bin(), "models", *args, *extra, "--tracking-uri", reg_cli.url]


def test_cli_models_list_json(reg_cli):
    out = cli_json(*_models(reg_cli, "list"))
    assert isinstance(out, list)
    by_name = {m["name"]: m for m in out}
    assert set(by_name) == {reg_cli.a, reg_cli.b}
    assert by_name[reg_cli.b].get("description") == "the b model"
    assert {t["key"]: t["value"] for t in by_name[reg_cli.b].get("tags", [])} == {"team": "x"}


def test_cli_models_show_json(reg_cli):
    out = cli_json(*_models(reg_cli, "show", reg_cli.a))
    assert isinstance(out, dict)
    api = reg_cli.api.get("/api/2.0/mlflow/registered-models/get", params={"name": reg_cli.a}).json()
    rm = api["registered_model"]
    assert out["name"] == reg_cli.a
    assert out["creation_timestamp"] == rm["creation_timestamp"]
    assert out["aliases"] == [{"alias": "champion", "version": "1"}]
    assert [v["version"] for v in out.get("latest_versions", [])] == ["2"]


def test_cli_models_versions_json(reg_cli):
    out = cli_json(*_models(reg_cli, "versions", reg_cli.a))
    assert isinstance(out, list)
    assert sorted(v["version"] for v in out) == ["1", "2"]
    for v in out:
        assert isinstance(v["version"], str)
        assert v["name"] == reg_cli.a
        assert v["source"] == f"models:/{reg_cli.mid}"
        assert v["current_stage"] == "None"
        assert v["run_id"] == reg_cli.rid
    assert cli_json(*_models(reg_cli, "versions", reg_cli.b)) == []


def test_cli_alias_set(reg_cli):
    p = run_cli(slipway_bin(), "models", "alias", "set", reg_cli.a, "prod", "2", "--tracking-uri", reg_cli.url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert reg_cli.client.get_model_version_by_alias(reg_cli.a, "prod").version == "2"
    # move it
    p = run_cli(slipway_bin(), "models", "alias", "set", reg_cli.a, "prod", "1", "--tracking-uri", reg_cli.url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert reg_cli.client.get_model_version_by_alias(reg_cli.a, "prod").version == "1"
    assert reg_cli.client.get_registered_model(reg_cli.a).aliases == {"champion": "1", "prod": "1"}


def test_cli_lineage_json_matches_api(reg_cli):
    out = cli_json(*_models(reg_cli, "lineage", reg_cli.a, "1"))
    r = reg_cli.api.get(LINEAGE, params={"name": reg_cli.a, "version": "1"})
    assert r.status_code == 200, r.text
    assert out == r.json()
    assert out["run_id"] == reg_cli.rid
    assert {p["key"]: p["value"] for p in out["params"]} == {"alpha": "0.3"}


def test_cli_tables_by_default(reg_cli):
    for args, must_contain in (
        (("list",), [reg_cli.a, reg_cli.b]),
        (("show", reg_cli.a), [reg_cli.a, "champion"]),
        (("versions", reg_cli.a), ["None"]),
        (("lineage", reg_cli.a, "1"), [reg_cli.rid]),
    ):
        p = run_cli(*_models(reg_cli, *args, json_out=False))
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert_no_panic(p)
        for s in must_contain:
            assert s in p.stdout, (args, s, p.stdout)
        with pytest.raises(ValueError):
            json.loads(p.stdout)


def test_cli_errors_are_readable(reg_cli):
    missing = unique("no-such-model")
    for args in (("show", missing), ("versions", missing), ("lineage", missing, "1"), ("alias", "set", missing, "x", "1")):
        for json_flag in (True, False):
            p = run_cli(*_models(reg_cli, *args, json_out=json_flag))
            assert p.returncode != 0, (args, p.stdout)
            assert_no_panic(p)
            assert missing in (p.stdout + p.stderr), (args, p.stdout, p.stderr)

    for args in (
        ("lineage", reg_cli.a, "99"),
        ("alias", "set", reg_cli.a, "latest", "1"),
        ("alias", "set", reg_cli.a, "ok", "99"),
        ("alias", "set", reg_cli.a, "ok", "abc"),
    ):
        p = run_cli(*_models(reg_cli, *args, json_out=False))
        assert p.returncode != 0, (args, p.stdout)
        assert_no_panic(p)
        assert (p.stdout + p.stderr).strip(), args
    assert "ok" not in reg_cli.client.get_registered_model(reg_cli.a).aliases

    # nothing listening
    dead = f"http://127.0.0.1:{free_port()}"
    p = run_cli(slipway_bin(), "models", "list", "--tracking-uri", dead, timeout=60)
    assert p.returncode != 0
    assert_no_panic(p)
    assert (p.stdout + p.stderr).strip()


# --------------------------------------------------------------------------------------
# gc
# --------------------------------------------------------------------------------------


def _gc(data_dir, *args):
    return cli_json(slipway_bin(), "gc", *args, "--json", "--data-dir", str(data_dir))


def _counts(report):
    for k in COUNT_KEYS:
        assert isinstance(report.get(k), int), (k, report)
    return {k: report[k] for k in COUNT_KEYS}


ZERO = {k: 0 for k in COUNT_KEYS}


def _local(art: Path, uri: str) -> Path:
    prefix = "mlflow-artifacts:/"
    assert uri.startswith(prefix), uri
    return art / uri[len(prefix):].lstrip("/")


def _rel_files(art: Path, d: Path):
    rel = d.relative_to(art).as_posix()
    return {f"{rel}/{p}" for p in files_under(d)}


def _gone(fn, *a):
    with pytest.raises(MlflowException) as e:
        fn(*a)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST", str(e.value)


@pytest.fixture(scope="module")
def gcw(server, tmp_path_factory):
    """One dedicated server: runs with artifacts, live and deleted registered versions, a
    deleted experiment; soft-deletes; then `gc --older-than 30d`, a dry run and the real run,
    recording what each changed. The tests below assert on the records."""
    tmp_path = tmp_path_factory.mktemp("gc")
    srv = SlipwayServer(tmp_path / "data", tmp_path / "logs")
    srv.start()
    try:
        yield _gc_world(srv, tmp_path)
    finally:
        srv.stop()
        server.use()


def _gc_world(srv, tmp_path):
    w = SimpleNamespace(srv=srv, tmp=tmp_path)
    client = w.client = mlflow.MlflowClient(tracking_uri=srv.url)
    w.api = Api(srv.url)
    data = w.data = srv.data_dir
    art = w.art = data / "artifacts"
    w.X, lr, _ = fit_models()
    w.expected_a = lr.predict(w.X)

    src = tmp_path / "src"
    (src / "nested" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("run a\n")
    (src / "b.txt").write_text("run b\n" * 100)
    (src / "k.txt").write_text("keep me\n")
    (src / "nested" / "one.bin").write_bytes(os.urandom(3000))
    (src / "nested" / "deep" / "two.bin").write_bytes(os.urandom(5000))
    dmodel = tmp_path / "dmodel"
    dmodel.mkdir()
    w.weights = os.urandom(4096)
    (dmodel / "weights.bin").write_bytes(w.weights)
    (dmodel / "MLmodel.txt").write_text("pretend\n")
    lmb = tmp_path / "lmb"
    lmb.mkdir()
    (lmb / "model.bin").write_bytes(os.urandom(2048))

    w.keep_exp = client.create_experiment(unique("gc-keep"))
    mlflow.set_experiment(experiment_id=w.keep_exp)
    w.name, w.name2 = unique("gc-model"), unique("gc-runsrc")

    # run A: a registered sklearn model (v1), plus a plain artifact
    with mlflow.start_run() as ra:
        mlflow.log_artifact(str(src / "a.txt"))
        w.info_a = log_sklearn(lr, registered_model_name=w.name)
    # run B: artifacts and a logged model registered as v2 (which is deleted again)
    with mlflow.start_run() as rb:
        mlflow.log_artifact(str(src / "b.txt"))
        mlflow.log_artifacts(str(src / "nested"), artifact_path="nested")
    w.lm_b = client.create_logged_model(w.keep_exp, name="mb", source_run_id=rb.info.run_id).model_id
    client.log_model_artifacts(w.lm_b, str(lmb))
    client.finalize_logged_model(w.lm_b, "READY")
    assert new_version(client, w.name, w.lm_b).version == "2"
    # run D: plain files registered through a runs:/ source
    with mlflow.start_run() as rd:
        mlflow.log_artifacts(str(dmodel), artifact_path="model")
    client.create_registered_model(w.name2)
    client.create_model_version(w.name2, f"runs:/{rd.info.run_id}/model", run_id=rd.info.run_id)
    # run K: stays alive
    with mlflow.start_run() as rk:
        mlflow.log_artifact(str(src / "k.txt"))
    # experiment C with two runs, deleted as a whole
    w.c_name = unique("gc-drop")
    w.c_exp = client.create_experiment(w.c_name)
    w.c_runs = []
    for _ in range(2):
        rid = client.create_run(w.c_exp).info.run_id
        client.log_artifact(rid, str(src / "a.txt"))
        client.log_artifacts(rid, str(src / "nested"), artifact_path="sub")
        client.set_terminated(rid)
        w.c_runs.append(rid)
    w.ra, w.rb, w.rd, w.rk = (r.info.run_id for r in (ra, rb, rd, rk))

    def run_dir(run_id):
        return _local(art, client.get_run(run_id).info.artifact_uri)

    w.dirs = {
        "a_model": _local(art, client.get_logged_model(w.info_a.model_id).artifact_location),
        "b_model": _local(art, client.get_logged_model(w.lm_b).artifact_location),
        "b_run": run_dir(w.rb),
        "d_model": run_dir(w.rd) / "model",
        "k_run": run_dir(w.rk),
        "c_exp": _local(art, client.get_experiment(w.c_exp).artifact_location),
    }
    w.layout_ok = {k: bool(files_under(d)) for k, d in w.dirs.items()}
    w.protected = set().union(*(_rel_files(art, w.dirs[k]) for k in ("a_model", "d_model", "k_run")))
    w.doomed = set().union(*(_rel_files(art, w.dirs[k]) for k in ("b_model", "b_run", "c_exp")))

    # soft deletes
    client.delete_run(w.ra)
    client.delete_run(w.rb)
    client.delete_run(w.rd)
    client.delete_model_version(w.name, "2")
    client.delete_logged_model(w.lm_b)
    client.delete_experiment(w.c_exp)
    w.before = files_under(art)
    w.audit_before = w.api.audit(name=w.name)

    # nothing was deleted 30 days ago
    w.report_30d = _gc(data, "--older-than", "30d")
    w.files_30d = files_under(art)
    # dry run
    w.dry = _gc(data, "--older-than", "0s", "--dry-run")
    w.files_dry = files_under(art)
    w.stages_after_dry = (
        client.get_run(w.rb).info.lifecycle_stage,
        client.get_run(w.c_runs[0]).info.lifecycle_stage,
        client.get_experiment(w.c_exp).lifecycle_stage,
    )
    # the real thing, with the server running on the same data dir
    w.report = _gc(data, "--older-than", "0s")
    w.after = files_under(art)
    return w


def test_gc_layout_assumptions(gcw):
    assert all(gcw.layout_ok.values()), gcw.layout_ok
    assert gcw.protected and gcw.doomed
    assert ("delete_model_version", "2") in [(r["action"], r.get("version")) for r in gcw.audit_before]


def test_gc_older_than_30d_frees_nothing(gcw):
    assert _counts(gcw.report_30d) == ZERO, gcw.report_30d
    assert gcw.report_30d.get("dry_run") is False
    assert gcw.files_30d == gcw.before


def test_gc_dry_run_changes_nothing(gcw):
    assert gcw.dry.get("dry_run") is True
    assert gcw.files_dry == gcw.before
    assert gcw.stages_after_dry == ("deleted", "deleted", "deleted")
    assert _counts(gcw.dry) == _counts(gcw.report), (gcw.dry, gcw.report)


def test_gc_report_matches_what_was_removed(gcw):
    assert gcw.report.get("dry_run") is False
    counts = _counts(gcw.report)
    assert counts["experiments"] == 1
    assert counts["model_versions"] == 1
    assert counts["logged_models"] == 1
    assert 1 <= counts["runs"] <= 5  # B at least; C's two may be counted under the experiment
    assert set(gcw.after) <= set(gcw.before)
    removed = set(gcw.before) - set(gcw.after)
    assert gcw.doomed <= removed, sorted(gcw.doomed - removed)
    assert not (gcw.protected & removed), sorted(gcw.protected & removed)
    assert counts["artifact_files"] == len(removed)
    assert counts["artifact_bytes"] == sum(gcw.before[p] for p in removed)


def test_gc_rows_are_gone(gcw):
    client = gcw.client
    _gone(client.get_run, gcw.rb)
    for rid in gcw.c_runs:
        _gone(client.get_run, rid)
    _gone(client.get_experiment, gcw.c_exp)
    _gone(client.get_logged_model, gcw.lm_b)
    _gone(client.get_model_version, gcw.name, "2")
    all_exps = {e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)}
    assert gcw.c_exp not in all_exps and gcw.keep_exp in all_exps
    assert client.get_experiment(client.create_experiment(gcw.c_name)).name == gcw.c_name  # name is free
    assert gcw.api.audit(name=gcw.name) == gcw.audit_before  # gc never touches the audit trail


def _check_live(gcw, client):
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(f"models:/{gcw.name}/1").predict(gcw.X), gcw.expected_a)
    dst = gcw.tmp / unique("dl")
    got = Path(mlflow.artifacts.download_artifacts(f"models:/{gcw.name2}/1", dst_path=str(dst)))
    assert (got / "weights.bin").read_bytes() == gcw.weights
    assert (gcw.dirs["a_model"] / "MLmodel").is_file()
    assert client.get_run(gcw.rk).info.lifecycle_stage == "active"
    assert (gcw.dirs["k_run"] / "k.txt").read_text() == "keep me\n"
    assert Api(gcw.srv.url).lineage(gcw.name, 1)["logged_model_id"] == gcw.info_a.model_id


def test_gc_keeps_what_live_versions_reference(gcw):
    gcw.srv.use()
    _check_live(gcw, gcw.client)


def test_gc_version_numbers_are_not_reused(gcw):
    """v2 was deleted and then purged: the next version of the model is 3, never 2 again."""
    lm_k = gcw.client.create_logged_model(gcw.keep_exp, name="mk", source_run_id=gcw.rk)
    assert new_version(gcw.client, gcw.name, lm_k.model_id).version == "3"


def test_gc_live_logged_model_of_purged_run_stays_registrable(gcw):
    """A's logged model is live (only its run was deleted); MLflow registers it without
    looking at the run, so it must still be registrable after gc."""
    mv = new_version(gcw.client, gcw.name2, gcw.info_a.model_id)
    assert mv.status == "READY"


def test_gc_second_run_is_a_noop(gcw):
    assert _counts(_gc(gcw.data, "--older-than", "0s")) == ZERO
    assert _counts(_gc(gcw.data, "--older-than", "0s", "--dry-run")) == ZERO
    p = run_cli(slipway_bin(), "gc", "--older-than", "0s", "--dry-run", "--data-dir", str(gcw.data))
    assert p.returncode == 0, p.stdout + p.stderr
    assert_no_panic(p)
    assert p.stdout.strip()


def test_gc_state_survives_restart(gcw):
    gcw.srv.restart()
    client = mlflow.MlflowClient(tracking_uri=gcw.srv.url)
    _check_live(gcw, client)
    assert "1" in {v.version for v in client.search_model_versions(f"name = '{gcw.name}'")}
    _gone(client.get_run, gcw.rb)


@pytest.mark.parametrize("bad", ["banana", "-5s", "5 parsecs", ""])
def test_gc_rejects_bad_duration(tmp_path, bad):
    data = tmp_path / "data"
    data.mkdir()
    p = run_cli(slipway_bin(), "gc", f"--older-than={bad}", "--json", "--data-dir", str(data))
    assert p.returncode != 0, p.stdout
    assert_no_panic(p)
    msg = (p.stdout + p.stderr).lower()
    assert msg.strip()
    assert "duration" in msg or "older-than" in msg or (bad and bad in msg), msg
