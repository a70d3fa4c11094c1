"""Concurrency and crash durability.

(a) many client threads writing at once: no errors ("database is locked"), nothing lost.
(b) SIGKILL mid-stream: every acknowledged log_batch survives a restart, and no batch is
    ever partially applied.
(c) SIGTERM: graceful exit, everything visible after restart.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import mlflow
import requests
from conftest import unique
from mlflow.entities import Metric, Param, RunTag

N_THREADS = 32
PER_THREAD = 200


def test_concurrent_client_writes(client, experiment_id):
    own_runs = [client.create_run(experiment_id).info.run_id for _ in range(N_THREADS)]
    shared = client.create_run(experiment_id, run_name="shared").info.run_id
    errors = []
    start = threading.Barrier(N_THREADS)

    def worker(tid):
        c = mlflow.MlflowClient(tracking_uri=client.tracking_uri)
        rid = own_runs[tid]
        try:
            start.wait(timeout=60)
            for i in range(PER_THREAD):
                if i % 2 == 0:
                    c.log_metric(rid, f"m{i}", float(tid * 1000 + i), timestamp=1000 + i, step=i)
                else:
                    c.log_param(rid, f"p{i}", f"{tid}-{i}")
                if i % 20 == 0:
                    # contended writes to one run
                    c.log_metric(shared, f"t{tid}", float(i), timestamp=1000 + i, step=i)
                    c.log_param(shared, f"p{tid}_{i}", str(i))
                    c.set_tag(shared, f"tag{tid}", str(i))
            c.log_batch(
                shared,
                metrics=[Metric(f"b{tid}", float(j), 2000 + j, j) for j in range(50)],
                params=[Param(f"bp{tid}_{j}", str(j)) for j in range(10)],
                tags=[RunTag(f"bt{tid}", "done")],
            )
        except Exception as e:  # noqa: BLE001 - we collect everything
            errors.append((tid, repr(e)))

    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        list(pool.map(worker, range(N_THREADS)))

    assert errors == [], errors[:5]

    for tid, rid in enumerate(own_runs):
        r = client.get_run(rid)
        assert r.data.metrics == {
            f"m{i}": float(tid * 1000 + i) for i in range(0, PER_THREAD, 2)
        }, tid
        assert r.data.params == {f"p{i}": f"{tid}-{i}" for i in range(1, PER_THREAD, 2)}, tid

    s = client.get_run(shared)
    for tid in range(N_THREADS):
        assert s.data.metrics[f"t{tid}"] == float(max(range(0, PER_THREAD, 20)))
        assert s.data.metrics[f"b{tid}"] == 49.0
        assert s.data.tags[f"tag{tid}"] == str(max(range(0, PER_THREAD, 20)))
        assert s.data.tags[f"bt{tid}"] == "done"
        for i in range(0, PER_THREAD, 20):
            assert s.data.params[f"p{tid}_{i}"] == str(i)
        for j in range(10):
            assert s.data.params[f"bp{tid}_{j}"] == str(j)
        hist = client.get_metric_history(shared, f"t{tid}")
        assert sorted(m.step for m in hist) == list(range(0, PER_THREAD, 20))
        assert len(client.get_metric_history(shared, f"b{tid}")) == 50


def test_concurrent_experiment_creation(client):
    """Racing creates of the same name: exactly one wins, the rest get RESOURCE_ALREADY_EXISTS."""
    name = unique("race")
    results = []

    def create():
        c = mlflow.MlflowClient(tracking_uri=client.tracking_uri)
        try:
            results.append(("ok", c.create_experiment(name)))
        except mlflow.exceptions.MlflowException as e:
            results.append(("err", e.error_code))

    threads = [threading.Thread(target=create) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oks = [r for r in results if r[0] == "ok"]
    errs = [r for r in results if r[0] == "err"]
    assert len(oks) == 1, results
    assert all(code == "RESOURCE_ALREADY_EXISTS" for _, code in errs), results
    assert client.get_experiment_by_name(name).experiment_id == oks[0][1]


N_WRITERS = 8
METRICS_PER_BATCH = 100
ACKS_BEFORE_KILL = 60


def _batch_body(run_id, writer, i):
    return {
        "run_id": run_id,
        "metrics": [
            {
                "key": f"m_{writer}_{i}_{j}",
                "value": float(i * 1000 + j),
                "timestamp": 1_700_000_000_000 + i,
                "step": j,
            }
            for j in range(METRICS_PER_BATCH)
        ],
        "params": [{"key": f"p_{writer}_{i}", "value": f"batch-{i}"}],
        "tags": [{"key": f"t_{writer}_{i}", "value": "x"}],
    }


def test_sigkill_mid_stream_keeps_acknowledged_batches(private_server):
    srv = private_server
    srv.use()
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    eid = client.create_experiment(unique("crash"))
    run_ids = [client.create_run(eid).info.run_id for _ in range(N_WRITERS)]
    url = srv.url + "/api/2.0/mlflow/runs/log-batch"

    lock = threading.Lock()
    enough = threading.Event()
    acked = {w: set() for w in range(N_WRITERS)}
    attempted = {w: set() for w in range(N_WRITERS)}
    bad_status = []
    total = [0]

    def writer(w):
        sess = requests.Session()
        i = 0
        while True:
            body = _batch_body(run_ids[w], w, i)
            with lock:
                attempted[w].add(i)
            try:
                r = sess.post(url, json=body, timeout=30)
            except requests.RequestException:
                return  # server gone: outcome of batch i unknown
            if r.status_code != 200:
                with lock:
                    bad_status.append((w, i, r.status_code, r.text[:200]))
                return
            with lock:
                acked[w].add(i)
                total[0] += 1
                if total[0] >= ACKS_BEFORE_KILL:
                    enough.set()
            i += 1
            if i > 100_000:  # safety net, never reached in practice
                return

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(N_WRITERS)]
    for t in threads:
        t.start()
    assert enough.wait(timeout=120), f"only {total[0]} batches acknowledged: {bad_status[:3]}"
    srv.kill()  # SIGKILL while writers are still sending
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    assert bad_status == [], bad_status[:5]

    srv.start()  # same data dir, fresh port
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    n_acked = sum(len(v) for v in acked.values())
    assert n_acked >= ACKS_BEFORE_KILL

    for w, rid in enumerate(run_ids):
        run = client.get_run(rid)
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        present_batches = set()
        for i in attempted[w] | acked[w]:
            keys = [f"m_{w}_{i}_{j}" for j in range(METRICS_PER_BATCH)]
            have = [k in metrics for k in keys]
            has_param = f"p_{w}_{i}" in params
            has_tag = f"t_{w}_{i}" in tags
            parts = have + [has_param, has_tag]
            if all(parts):
                present_batches.add(i)
                for j in range(METRICS_PER_BATCH):
                    assert metrics[f"m_{w}_{i}_{j}"] == float(i * 1000 + j)
                assert params[f"p_{w}_{i}"] == f"batch-{i}"
            else:
                assert not any(parts), (
                    f"writer {w} batch {i} partially applied: "
                    f"{sum(have)}/{METRICS_PER_BATCH} metrics, param={has_param}, tag={has_tag}"
                )
        missing = acked[w] - present_batches
        assert not missing, f"writer {w}: acknowledged batches lost after SIGKILL: {sorted(missing)}"
        # nothing from batches that were never sent
        logged = {k for k in params if k.startswith(f"p_{w}_")}
        assert logged == {f"p_{w}_{i}" for i in present_batches}
        assert len([k for k in metrics if k.startswith(f"m_{w}_")]) == METRICS_PER_BATCH * len(
            present_batches
        )

    # the restarted server is fully writable
    client.log_metric(run_ids[0], "after_restart", 1.0)
    assert client.get_run(run_ids[0]).data.metrics["after_restart"] == 1.0


def test_sigterm_is_graceful_and_data_survives_restart(private_server, tmp_path):
    srv = private_server
    srv.use()
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    name = unique("survive")
    eid = client.create_experiment(name, tags={"k": "v"})
    art = tmp_path / "keep.bin"
    content = os.urandom(10_000)
    art.write_bytes(content)
    with mlflow.start_run(experiment_id=eid, run_name="survivor") as run:
        mlflow.log_param("p", "1")
        mlflow.log_metric("m", 2.5, step=7)
        mlflow.set_tag("t", "x")
        mlflow.log_artifact(str(art), artifact_path="files")
    rid = run.info.run_id
    deleted = client.create_run(eid).info.run_id
    client.delete_run(deleted)

    rc = srv.stop()
    assert rc == 0, f"server exited with {rc} on SIGTERM:\n{srv.stderr_text()}"
    srv.start()
    client = mlflow.MlflowClient(tracking_uri=srv.url)

    exp = client.get_experiment_by_name(name)
    assert exp.experiment_id == eid and exp.tags["k"] == "v"
    r = client.get_run(rid)
    assert r.info.status == "FINISHED" and r.info.run_name == "survivor"
    assert r.data.params == {"p": "1"}
    assert r.data.metrics == {"m": 2.5}
    assert r.data.tags["t"] == "x"
    assert [(m.step, m.value) for m in client.get_metric_history(rid, "m")] == [(7, 2.5)]
    assert client.get_run(deleted).info.lifecycle_stage == "deleted"
    assert {x.info.run_id for x in client.search_runs([eid])} == {rid}
    out = tmp_path / "out"
    out.mkdir()
    local = client.download_artifacts(rid, "files/keep.bin", str(out))
    with open(local, "rb") as fh:
        assert fh.read() == content
    # ids keep increasing / stay unique after restart
    eid2 = client.create_experiment(unique("after-restart"))
    assert eid2 != eid
