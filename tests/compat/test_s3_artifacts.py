"""Artifacts on an S3-protocol server: proxied (clients go through Slipway) and direct (the
client writes s3:// itself with boto3), as MLflow's --serve-artifacts / --no-serve-artifacts.

scripts/test.sh starts the server (moto on loopback) and exports its endpoint, credentials and
SLIPWAY_TEST_S3_BUCKET; both Slipway and boto3 read the same AWS_* variables. Every check
looks in the bucket itself with boto3, not only through Slipway.
"""

import contextlib
import hashlib
import os
import subprocess
import time
import uuid

import mlflow
import numpy as np
import pytest
import requests
import serving_helpers as sh
from conftest import free_port, slipway_bin, unique

ART = "/api/2.0/mlflow-artifacts/artifacts"


def bucket() -> str:
    name = os.environ.get("SLIPWAY_TEST_S3_BUCKET")
    assert name, "SLIPWAY_TEST_S3_BUCKET is not set: run scripts/test.sh, or `. scripts/s3.sh && slipway_s3_start`"
    return name


def s3():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def keys_under(prefix: str) -> dict:
    """Every object under prefix in the test bucket: key -> size."""
    out, token = {}, None
    while True:
        kw = {"Bucket": bucket(), "Prefix": prefix}
        if token:
            kw["ContinuationToken"] = token
        page = s3().list_objects_v2(**kw)
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


@contextlib.contextmanager
def s3_server(tmp_path, mode):
    """A server whose artifact root is a fresh prefix of the test bucket; yields it and the prefix."""
    prefix = f"{mode}-{uuid.uuid4().hex}"
    srv = sh.ServingServer(tmp_path / "srv" / "data", tmp_path / "srv" / "logs")
    srv.artifact_args = ["--artifact-root", f"s3://{bucket()}/{prefix}", "--artifact-mode", mode]
    srv.start()
    try:
        yield srv, prefix
    finally:
        srv.stop()


@pytest.fixture
def restore(server):
    yield
    server.use()


def test_direct_mode_client_writes_the_bucket_and_reads_it_back(tmp_path, restore):
    with s3_server(tmp_path, "direct") as (srv, prefix):
        client = mlflow.MlflowClient(tracking_uri=srv.url)
        eid = client.create_experiment(unique("s3-direct"))
        assert client.get_experiment(eid).artifact_location == f"s3://{bucket()}/{prefix}/{eid}"
        run = client.create_run(eid)
        assert run.info.artifact_uri == f"s3://{bucket()}/{prefix}/{eid}/{run.info.run_id}/artifacts"
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "hello.txt").write_text("hello s3\n")
        payload = os.urandom(300_000)
        (src / "sub" / "blob.bin").write_bytes(payload)
        client.log_artifacts(run.info.run_id, str(src))

        base = f"{prefix}/{eid}/{run.info.run_id}/artifacts"
        assert keys_under(base) == {f"{base}/hello.txt": 9, f"{base}/sub/blob.bin": len(payload)}
        assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["hello.txt", "sub"]
        got = client.download_artifacts(run.info.run_id, "sub/blob.bin", str(tmp_path / "dl"))
        assert open(got, "rb").read() == payload
        # Nothing came through the server's own proxy: the data dir holds no artifact files.
        assert not (srv.data_dir / "artifacts").exists() or not any((srv.data_dir / "artifacts").rglob("*.bin"))


def test_direct_mode_registered_model_serves_from_the_bucket(tmp_path, restore):
    with s3_server(tmp_path, "direct") as (srv, prefix):
        name = unique("s3-model")
        models = sh.versioned_models(n_versions=1)
        client = sh.register_versions(srv, name, models)
        mv = client.get_model_version(name, "1")
        uri = requests.get(
            f"{srv.url}/api/2.0/mlflow/model-versions/get-download-uri",
            params={"name": name, "version": "1"},
            timeout=10,
        ).json()["artifact_uri"]
        assert uri.startswith(f"s3://{bucket()}/{prefix}/"), uri
        key = uri[len(f"s3://{bucket()}/"):]
        assert f"{key}/model.onnx" in keys_under(key), "the model's files are in the bucket"

        # The client loads it straight from the bucket, and the server serves the same bytes.
        onx, X, y = models[0]
        loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        assert mv.version == "1"
        sh.create_deployment(srv.url, {"name": "s3dep", "model": name, "alias": "champion"})
        sh.wait_deployment_ready(srv.url, "s3dep")
        rows = X[:5].astype(np.float32)
        body = {"inputs": rows.tolist()}
        r = requests.post(f"{srv.url}/serving/s3dep/invocations", json=body, timeout=60)
        assert r.status_code == 200, r.text
        # Tensor outputs by name, as mlflow's scoring server answers for ONNX models.
        served = np.asarray(r.json()["predictions"]["variable"], dtype=np.float64).reshape(-1)
        local = np.asarray(loaded.predict(rows)["variable"], dtype=np.float64).reshape(-1)
        np.testing.assert_allclose(served, local, rtol=1e-5)
        np.testing.assert_allclose(served, y[:5], rtol=1e-4)


def test_proxied_upload_is_multipart_in_the_bucket_and_streams_back(tmp_path, restore):
    with s3_server(tmp_path, "proxied") as (srv, prefix):
        size = (24 << 20) + 5  # three 8 MiB parts and a short one
        chunk = os.urandom(1 << 20)
        digest = hashlib.sha256()

        def body():
            sent = 0
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                digest.update(piece)
                sent += len(piece)
                yield piece

        r = requests.put(f"{srv.url}{ART}/big/blob.bin", data=body(), timeout=120)
        assert r.status_code == 200, r.text
        assert keys_under(f"{prefix}/big/") == {f"{prefix}/big/blob.bin": size}
        etag = s3().head_object(Bucket=bucket(), Key=f"{prefix}/big/blob.bin")["ETag"]
        assert etag.strip('"').endswith("-4"), f"not a 4-part multipart upload: {etag}"

        back = hashlib.sha256()
        with requests.get(f"{srv.url}{ART}/big/blob.bin", stream=True, timeout=120) as resp:
            assert resp.status_code == 200
            assert int(resp.headers["content-length"]) == size
            for piece in resp.iter_content(1 << 20):
                back.update(piece)
        assert back.hexdigest() == digest.hexdigest()
        listed = requests.get(f"{srv.url}{ART}", params={"path": "big"}, timeout=30).json()
        assert listed == {"files": [{"path": "blob.bin", "is_dir": False, "file_size": size}]}

        # The sklearn flavor through the proxy: the client never sees the bucket.
        client = mlflow.MlflowClient(tracking_uri=srv.url)
        eid = client.create_experiment(unique("s3-proxied"))
        assert client.get_experiment(eid).artifact_location == f"mlflow-artifacts:/{eid}"
        run = client.create_run(eid)
        client.log_text(run.info.run_id, "through the proxy", "note.txt")
        assert f"{prefix}/{eid}/{run.info.run_id}/artifacts/note.txt" in keys_under(f"{prefix}/{eid}/")
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "through the proxy"


def test_broken_proxied_upload_leaves_no_object_and_no_open_upload(tmp_path, restore):
    with s3_server(tmp_path, "proxied") as (srv, prefix):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.putrequest("PUT", f"{ART}/half/blob.bin")
        conn.putheader("Content-Length", str(40 << 20))
        conn.endheaders()
        for _ in range(12):  # 12 MiB of the 40 announced: one part has gone out
            conn.send(os.urandom(1 << 20))
        conn.close()
        # The server notices the broken body, aborts the multipart upload, stores nothing.
        deadline = time.monotonic() + 20
        while True:
            open_uploads = s3().list_multipart_uploads(Bucket=bucket(), Prefix=prefix).get("Uploads", [])
            if not open_uploads or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert open_uploads == [], open_uploads
        assert keys_under(prefix) == {}
        assert requests.get(f"{srv.url}/health", timeout=5).status_code == 200


def test_gc_removes_deleted_runs_objects_and_keeps_registered_ones(tmp_path, restore):
    with s3_server(tmp_path, "direct") as (srv, prefix):
        name = unique("s3-gc")
        client = sh.register_versions(srv, name, sh.versioned_models(n_versions=1))
        kept_run = client.get_model_version(name, "1").run_id
        client.log_text(kept_run, "scratch", "scratch.txt")
        eid = client.get_run(kept_run).info.experiment_id
        gone = client.create_run(eid)
        client.log_text(gone.info.run_id, "bye", "bye.txt")
        client.delete_run(gone.info.run_id)
        client.delete_run(kept_run)
    before = keys_under(prefix)
    assert any(k.endswith(f"{gone.info.run_id}/artifacts/bye.txt") for k in before)
    p = subprocess.run(
        [slipway_bin(), "gc", "--older-than", "0s", "--json", "--data-dir", str(srv.data_dir),
         "--artifact-root", f"s3://{bucket()}/{prefix}", "--artifact-mode", "direct"],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    after = keys_under(prefix)
    assert not any(gone.info.run_id in k for k in after), "the deleted run's objects are gone"
    model_files = [k for k in before if f"{kept_run}/" not in k and "/models/" in k]
    assert model_files and all(k in after for k in model_files), "the registered model's files stay"
    assert any(k.endswith(f"{kept_run}/artifacts/scratch.txt") for k in after), (
        "a deleted run that a live version came from stays, files and all (lineage)"
    )


def test_an_unreachable_missing_or_malformed_root_stops_start_up_with_a_message(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for root, env, needle in [
        ("s3://Bad_Bucket/x", {}, "bucket name"),
        ("gs://b/x", {}, "unsupported artifact root"),
        (f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x", {}, "reading the artifact root"),
        (f"s3://{bucket()}/x", {"AWS_ENDPOINT_URL": closed}, "reading the artifact root"),
    ]:
        p = subprocess.run(
            [slipway_bin(), "server", "--port", "0", "--data-dir", str(tmp_path / "d"), "--artifact-root", root],
            capture_output=True, text=True, timeout=90, env={**os.environ, **env},
        )
        assert p.returncode != 0, root
        assert needle in p.stderr, p.stderr
        assert "listening" not in p.stderr
