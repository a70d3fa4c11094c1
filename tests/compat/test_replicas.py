"""Three `slipway server` replicas on one PostgreSQL database and one S3 bucket behave as one
server: clients spread requests round-robin, one replica is killed with SIGKILL mid-load, and
afterwards every acknowledged write is there exactly once and every replica answers the same.
Races between replicas have one winner; a change on one replica reaches the others' serving
at once (their own polling is set to a minute, so only the change feed can explain it).

Needs the PostgreSQL and S3 servers scripts/test.sh starts (SLIPWAY_TEST_PG_URL,
SLIPWAY_TEST_S3_BUCKET).
"""

import itertools
import os
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import unique

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"
N_REPLICAS = 3
# Liveness bound for a change to reach another replica; their own poll is 60 s.
PROPAGATION_S = 10


def fresh_database() -> str:
    admin = os.environ.get("SLIPWAY_TEST_PG_URL")
    assert admin, "SLIPWAY_TEST_PG_URL is not set: run scripts/test.sh (it starts PostgreSQL)"
    name = "replicas_" + uuid.uuid4().hex
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    return admin.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, server):
    bucket = os.environ.get("SLIPWAY_TEST_S3_BUCKET")
    assert bucket, "SLIPWAY_TEST_S3_BUCKET is not set: run scripts/test.sh (it starts an S3 server)"
    db = fresh_database()
    root = f"s3://{bucket}/replicas-{uuid.uuid4().hex}"
    tmp = tmp_path_factory.mktemp("replicas")
    servers = []
    for i in range(N_REPLICAS):
        srv = sh.ServingServer(
            tmp / f"r{i}" / "data",
            tmp / f"r{i}" / "logs",
            ["--serving-poll-ms", "60000", "--monitor-interval-secs", "1"],
        )
        srv.store_uri = db
        srv.artifact_args = ["--artifact-root", root]
        servers.append(srv)
    # Started together: their migrations race on the empty database.
    with ThreadPoolExecutor(N_REPLICAS) as pool:
        list(pool.map(lambda s: s.start(), servers))
    for s in servers:
        s.database = db
    yield servers
    for s in servers:
        s.stop()
    server.use()


def post(url, path, body):
    return requests.post(url + API + path, json=body, timeout=30)


def test_round_robin_load_with_a_replica_killed_loses_nothing_acknowledged(replicas, tmp_path):
    urls = [s.url for s in replicas]
    victim = replicas[2]
    exp = post(urls[0], "/experiments/create", {"name": unique("replicas")}).json()["experiment_id"]
    runs = [
        post(urls[i % N_REPLICAS], "/runs/create", {"experiment_id": exp, "start_time": 1}).json()["run"]["info"][
            "run_id"
        ]
        for i in range(6)
    ]
    acked = {"metrics": set(), "params": {}, "tags": {}, "artifacts": {}}
    lock = threading.Lock()
    counter = itertools.count()
    killed = threading.Event()

    def send(method, path, **kw):
        """Round-robin; a replica that does not answer is skipped and the request sent to the
        next one. Returns the response that acknowledged it, or None."""
        start = next(counter)
        for attempt in range(2 * N_REPLICAS):
            url = urls[(start + attempt) % N_REPLICAS]
            try:
                r = requests.request(method, url + path, timeout=30, **kw)
            except requests.ConnectionError:
                continue
            if r.status_code == 503:
                time.sleep(0.05)
                continue
            return r
        return None

    def worker(w):
        run = runs[w]
        for b in range(25):
            if w == 0 and b == 10:
                victim.kill()  # SIGKILL, mid-load: requests in flight to it are lost
                killed.set()
            metrics = [{"key": f"m{b % 3}", "value": float(w * 1000 + b), "timestamp": 1000 + b, "step": b}]
            params = [{"key": f"p{b}", "value": f"v{w}-{b}"}]
            tags = [{"key": "batch", "value": str(b)}]
            r = send("POST", API + "/runs/log-batch", json={"run_id": run, "metrics": metrics, "params": params, "tags": tags})
            if r is not None and r.status_code == 200:
                with lock:
                    acked["metrics"].update((run, m["key"], m["step"], m["value"]) for m in metrics)
                    acked["params"][(run, f"p{b}")] = f"v{w}-{b}"
                    acked["tags"][(run, "batch")] = max(acked["tags"].get((run, "batch"), -1), b)
            if b % 5 == 0:
                data = os.urandom(50_000 + b)
                path = f"{ART}/{exp}/{run}/artifacts/part-{b}.bin"
                r = send("PUT", path, data=data)
                if r is not None and r.status_code == 200:
                    with lock:
                        acked["artifacts"][path] = data

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(worker, range(6)))
    assert killed.is_set()
    assert len(acked["metrics"]) > 100, "the load did not get through"

    survivors = [s.url for s in replicas if s is not victim]
    views = []
    for url in survivors:
        client = mlflow.MlflowClient(tracking_uri=url)
        view = {}
        for run in runs:
            r = client.get_run(run)
            points = []
            for key in ("m0", "m1", "m2"):
                points += [(run, key, m.step, m.value) for m in client.get_metric_history(run, key)]
            assert len(points) == len(set(points)), f"a metric point is stored twice on {url}"
            view[run] = (sorted(points), dict(r.data.params), dict(r.data.tags).get("batch"))
        views.append(view)
        stored = {p for v in view.values() for p in v[0]}
        missing = acked["metrics"] - stored
        assert not missing, f"{len(missing)} acknowledged metric points missing on {url}: {sorted(missing)[:5]}"
        for (run, key), value in acked["params"].items():
            assert view[run][1].get(key) == value, (url, run, key)
        for (run, _), last in acked["tags"].items():
            # A later batch may have been stored although its answer was lost with the replica.
            assert int(view[run][2]) >= last, (url, run, view[run][2], last)
        for path, data in acked["artifacts"].items():
            got = requests.get(url + path, timeout=30)
            assert got.status_code == 200 and got.content == data, (url, path, got.status_code)
    assert views[0] == views[1], "the surviving replicas disagree"

    # The killed replica comes back and answers as the others do.
    victim.start()
    client = mlflow.MlflowClient(tracking_uri=victim.url)
    for run in runs:
        points = []
        for key in ("m0", "m1", "m2"):
            points += [(run, key, m.step, m.value) for m in client.get_metric_history(run, key)]
        r = client.get_run(run)
        assert (sorted(points), dict(r.data.params), dict(r.data.tags).get("batch")) == views[0][run]


def test_races_across_replicas_have_one_winner(replicas):
    urls = [s.url for s in replicas]
    barrier = threading.Barrier(9)

    def at_once(i, path, body):
        barrier.wait()
        return post(urls[i % N_REPLICAS], path, body)

    name = unique("race")
    for path, body in [
        ("/experiments/create", {"name": name}),
        ("/registered-models/create", {"name": name}),
    ]:
        with ThreadPoolExecutor(9) as pool:
            answers = list(pool.map(lambda i: at_once(i, path, body), range(9)))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(200) == 1, (path, [(r.status_code, r.text[:200]) for r in answers])
        losers = [r.json()["error_code"] for r in answers if r.status_code != 200]
        assert set(losers) == {"RESOURCE_ALREADY_EXISTS"}, losers

    run = post(urls[0], "/runs/create", {"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    with ThreadPoolExecutor(9) as pool:
        answers = list(
            pool.map(
                lambda i: at_once(i, "/runs/log-parameter", {"run_id": run, "key": "lr", "value": f"0.{i}"}), range(9)
            )
        )
    assert [r.status_code for r in answers].count(200) == 1, [(r.status_code, r.text[:200]) for r in answers]
    assert {r.json()["error_code"] for r in answers if r.status_code != 200} == {"INVALID_PARAMETER_VALUE"}
    winner = next(i for i, r in enumerate(answers) if r.status_code == 200)
    for url in urls:
        assert mlflow.MlflowClient(tracking_uri=url).get_run(run).data.params == {"lr": f"0.{winner}"}

    # 30 versions created through three replicas at once are numbered 1..30.
    src = f"runs:/{run}/model"
    with ThreadPoolExecutor(10) as pool:
        made = list(
            pool.map(
                lambda i: post(urls[i % N_REPLICAS], "/model-versions/create", {"name": name, "source": src}), range(30)
            )
        )
    assert all(r.status_code == 200 for r in made), [r.text[:200] for r in made if r.status_code != 200]
    assert sorted(int(r.json()["model_version"]["version"]) for r in made) == list(range(1, 31))

    # Concurrent alias moves end on one version, and every replica reads the same one.
    barrier30 = threading.Barrier(12)

    def move(i):
        barrier30.wait()
        return post(urls[i % N_REPLICAS], "/registered-models/alias", {"name": name, "alias": "champion", "version": str(i + 1)})

    with ThreadPoolExecutor(12) as pool:
        moves = list(pool.map(move, range(12)))
    assert all(r.status_code == 200 for r in moves)
    seen = {
        mlflow.MlflowClient(tracking_uri=u).get_model_version_by_alias(name, "champion").version for u in urls
    }
    assert len(seen) == 1 and int(seen.pop()) in range(1, 13)


def test_a_change_on_one_replica_reaches_the_others_serving(replicas):
    a, b, c = replicas
    name = unique("rep-model")
    models = sh.versioned_models(n_versions=2)
    sh.register_versions(a, name, models, aliases={"champion": "1"})
    sh.create_deployment(a.url, {"name": "rep", "model": name, "alias": "champion"})
    rows = {"inputs": models[0][1][:3].astype(np.float32).tolist()}

    def served_version(srv):
        try:
            r = requests.post(f"{srv.url}/serving/rep/invocations", json=rows, timeout=30)
        except requests.ConnectionError:
            return None
        return r.headers.get("X-Slipway-Model-Version") if r.status_code == 200 else None

    def wait_for(srv, version):
        deadline = time.monotonic() + PROPAGATION_S
        while time.monotonic() < deadline:
            if served_version(srv) == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"{srv.url} does not serve version {version} within {PROPAGATION_S}s: {served_version(srv)}")

    # Created on A: B and C serve it without waiting for their minute-long poll.
    for srv in (a, b, c):
        wait_for(srv, "1")
    # The alias moved on B: A and C swap too.
    mlflow.MlflowClient(tracking_uri=b.url).set_registered_model_alias(name, "champion", "2")
    for srv in (a, b, c):
        wait_for(srv, "2")
    # Deleted on C: gone everywhere.
    assert requests.delete(f"{c.url}/api/v1/deployments/rep", timeout=30).status_code == 200
    for srv in (a, b):
        deadline = time.monotonic() + PROPAGATION_S
        while requests.get(f"{srv.url}/serving/rep/ping", timeout=10).status_code != 404:
            assert time.monotonic() < deadline, f"{srv.url} still serves a deleted deployment"
            time.sleep(0.1)


def lease_holders(db):
    """(holder, seconds until it expires) of the monitor lease rows in the replicas' database."""
    out = subprocess.run(
        ["psql", db, "-XAtc", "SELECT holder, (expires_ms - (extract(epoch FROM now()) * 1000)::bigint) FROM leases "
         "WHERE name = 'monitors'"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return [tuple(line.split("|")) for line in out]


def test_one_replica_evaluates_monitors_and_another_takes_over_when_it_dies(replicas):
    by_pid = {s.proc.pid: s for s in replicas}
    # An earlier test SIGKILLed a replica: the lease may still name it until it lapses (3 s),
    # after which a live replica must hold it.
    deadline = time.monotonic() + PROPAGATION_S
    while True:
        rows = lease_holders(replicas[0].database)
        assert len(rows) == 1, rows
        leader = by_pid.get(int(rows[0][0].split("-")[0]))
        if leader is not None:
            break
        assert time.monotonic() < deadline, f"the lease holder {rows[0][0]} is none of the replicas {sorted(by_pid)}"
        time.sleep(0.2)
    others = [s for s in replicas if s is not leader]
    # Only the leader says it evaluates monitors.
    assert "now evaluates monitors" in leader.stderr_text()
    assert all("now evaluates monitors" not in s.stderr_text() for s in others)

    leader.kill()  # SIGKILL: no step-down; the lease (3 intervals = 3 s) lapses on its own
    deadline = time.monotonic() + PROPAGATION_S
    while True:
        rows = lease_holders(replicas[0].database)
        new = by_pid.get(int(rows[0][0].split("-")[0])) if rows else None
        if new is not None and new is not leader:
            break
        assert time.monotonic() < deadline, f"no replica took the monitor lease over: {rows}"
        time.sleep(0.2)
    assert new.alive() and "now evaluates monitors" in new.stderr_text()
    leader.start()  # back as a follower
    time.sleep(2.5)
    assert "now evaluates monitors" not in leader.stderr_text(), "two replicas evaluating at once"
