"""`slipway data`: dataset versions on the shared server (its database and artifact root are
whatever the test run chose: SQLite and a folder, or PostgreSQL and S3). Round trips are
byte-identical, versions share unchanged files, a kill during `add` leaves no version, and bad
input gets a clear error with nothing written."""

import json
import os
import signal
import subprocess
import time
import uuid

import pandas as pd
import requests
from conftest import slipway_bin, unique
from registry_helpers import run_cli

CACHE = "/api/2.0/mlflow-artifacts/artifacts"


def data(server, *args, timeout=300):
    return run_cli(slipway_bin(), "data", *args, "--tracking-uri", server.url, timeout=timeout)


def ok(p):
    assert p.returncode == 0, f"{p.args}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p


def blobs(server) -> set[str]:
    """Every blob in the content-addressed store."""
    found = set()
    top = requests.get(server.url + CACHE, params={"path": "slipway-cache/sha256"}, timeout=30).json()
    for prefix in top.get("files", []):
        # Listings name entries relative to the folder listed.
        path = "slipway-cache/sha256/" + prefix["path"].rsplit("/", 1)[-1]
        listed = requests.get(server.url + CACHE, params={"path": path}, timeout=30).json()
        found |= {f["path"].rsplit("/", 1)[-1] for f in listed.get("files", [])}
    return found


def tree(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_a_version_comes_back_byte_identical_and_the_next_stores_only_what_changed(server, tmp_path):
    name = unique("images")
    src = tmp_path / "src" / "shots"
    src.mkdir(parents=True)
    for i in range(1000):
        (src / f"{i:04d}.bin").write_bytes(os.urandom(64) + f"{name}-{i}".encode())
    pd.DataFrame({"x": range(100), "label": ["a", "b"] * 50}).to_csv(tmp_path / "src" / "labels.csv", index=False)

    before = blobs(server)
    first = json.loads(ok(data(server, "add", name, str(src), str(tmp_path / "src" / "labels.csv"),
                               "--alias", "train", "-m", "first cut", "--json")).stdout)["version"]
    assert (first["version"], first["files"], first["rows"], first["aliases"]) == (1, 1001, 100, ["train"])
    added = blobs(server) - before
    # Every file, the table's profile and the manifest.
    assert len(added) == 1001 + 1 + 1, len(added)

    ok(data(server, "get", f"{name}@train", str(tmp_path / "back")))
    assert tree(tmp_path / "back") == tree(tmp_path / "src")

    (src / "0500.bin").write_bytes(b"changed")
    stored = blobs(server)
    second = json.loads(ok(data(server, "add", name, str(src), str(tmp_path / "src" / "labels.csv"), "--json")).stdout)
    assert second["version"]["version"] == 2
    new = blobs(server) - stored
    # The changed file and the new manifest; the other 999 files and the table are shared.
    assert len(new) == 2, new

    diff = json.loads(ok(data(server, "diff", f"{name}@1", "2", "--json")).stdout)
    assert [c["path"] for c in diff["changed"]] == ["shots/0500.bin"]
    assert diff["unchanged"] == 1000 and not diff["added"] and not diff["removed"]
    listed = json.loads(ok(data(server, "versions", name, "--json")).stdout)
    assert [v["version"] for v in listed] == [2, 1] and listed[1]["message"] == "first cut"
    # Getting a version again writes nothing; a different file in the way needs --force.
    again = json.loads(ok(data(server, "get", f"{name}@1", str(tmp_path / "back"), "--json")).stdout)
    assert again["written"] == 0
    refused = data(server, "get", f"{name}@2", str(tmp_path / "back"))
    assert refused.returncode != 0 and "--force" in refused.stderr
    forced = json.loads(ok(data(server, "get", f"{name}@2", str(tmp_path / "back"), "--force", "--json")).stdout)
    assert forced["written"] == 1 and (tmp_path / "back" / "shots" / "0500.bin").read_bytes() == b"changed"


def test_a_table_diff_reports_schema_changes_and_drift(server, tmp_path):
    name = unique("churn")
    path = tmp_path / "churn.csv"
    pd.DataFrame({"age": [20 + i % 30 for i in range(500)], "plan": ["basic", "pro"] * 250}).to_csv(path, index=False)
    ok(data(server, "add", name, str(path)))
    shifted = pd.DataFrame({"age": [60 + i % 30 for i in range(500)], "plan": ["basic", "pro"] * 250,
                            "region": ["eu"] * 500})
    shifted.to_csv(path, index=False)
    ok(data(server, "add", name, str(path)))
    diff = json.loads(ok(data(server, "diff", f"{name}@1", f"{name}@2", "--json")).stdout)
    table = diff["changed"][0]["table"]
    assert table["columns_added"] == ["region"] and table["rows_before"] == table["rows_after"] == 500
    drifted = {c["column"]: c["drifted"] for c in table["drift"]["columns"]}
    assert drifted == {"age": True, "plan": False}, table["drift"]
    text = ok(data(server, "diff", f"{name}@1", "2")).stdout
    assert "columns added: region" in text and "drift age" in text


def test_a_kill_during_add_leaves_no_version_and_the_rerun_reuses_what_was_sent(server, tmp_path):
    name = unique("big")
    src = tmp_path / "big"
    src.mkdir()
    for i in range(200):
        (src / f"{i:03d}.bin").write_bytes(os.urandom(1 << 20))
    before = blobs(server)
    # Blobs go up in the order of their hashes: the first one stored says sending has begun.
    import hashlib
    first = min(hashlib.sha256((src / n).read_bytes()).hexdigest() for n in os.listdir(src))
    first_url = f"{server.url}{CACHE}/slipway-cache/sha256/{first[:2]}/{first}"
    proc = subprocess.Popen([slipway_bin(), "data", "add", name, str(src), "--jobs", "1", "--tracking-uri", server.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while requests.head(first_url, timeout=10).status_code != 200 and time.monotonic() < deadline:
        assert proc.poll() is None, "the add ended before it was seen sending"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    sent = blobs(server) - before
    assert sent, "the kill came after some blobs were stored"
    gone = data(server, "versions", name)
    assert gone.returncode != 0 and "not found" in gone.stderr, "no version, not even the set"
    ok(data(server, "add", name, str(src)))
    assert json.loads(ok(data(server, "versions", name, "--json")).stdout)[0]["files"] == 200


def test_bad_input_gets_a_clear_error_and_writes_nothing(server, tmp_path):
    name = unique("bad")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("x\n1\n")
    os.symlink("/etc/passwd", src / "passwd")
    refused = data(server, "add", name, str(src))
    assert refused.returncode != 0 and "symbolic link" in refused.stderr, refused.stderr
    (src / "passwd").unlink()
    for args, message in [
        (("get", f"{name}@1", str(tmp_path / "out")), "not found"),
        (("add", "../escape", str(src)), "data set name"),
        (("add", name, str(src), "--alias", "latest"), "alias"),
        (("add", name, str(tmp_path / "missing")), "missing"),
    ]:
        p = data(server, *args)
        assert p.returncode != 0 and message in p.stderr, (args, p.stderr)
        assert "panicked" not in p.stderr
    assert not (tmp_path / "out").exists()
    ok(data(server, "add", name, str(src)))
    for which in ("2", "nope"):
        p = data(server, "get", f"{name}@{which}", str(tmp_path / "out"))
        assert p.returncode != 0 and f"no version '{which}'" in p.stderr, p.stderr

    # The server checks what it is sent: a manifest it lacks, or one naming missing files.
    versions = f"{server.url}/api/v1/data/{name}/versions"
    r = requests.post(versions, json={"manifest": "0" * 64}, timeout=10)
    assert r.status_code == 400 and "not stored" in r.json()["message"], r.text
    r = requests.post(versions, json={"manifest": "../../x"}, timeout=10)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    lying = json.dumps({"format": "slipway-data/1",
                        "files": [{"path": "a.csv", "size": 1, "sha256": uuid.uuid4().hex * 2}]}).encode()
    import hashlib
    digest = hashlib.sha256(lying).hexdigest()
    put = requests.put(f"{server.url}{CACHE}/slipway-cache/sha256/{digest[:2]}/{digest}", data=lying, timeout=10)
    assert put.ok, put.text
    r = requests.post(versions, json={"manifest": digest}, timeout=10)
    assert r.status_code == 400 and "not stored" in r.json()["message"], r.text
    climbing = json.dumps({"format": "slipway-data/1",
                           "files": [{"path": "../../etc/x", "size": 1, "sha256": "0" * 64}]}).encode()
    digest = hashlib.sha256(climbing).hexdigest()
    requests.put(f"{server.url}{CACHE}/slipway-cache/sha256/{digest[:2]}/{digest}", data=climbing, timeout=10)
    r = requests.post(versions, json={"manifest": digest}, timeout=10)
    assert r.status_code == 400 and "manifest path" in r.json()["message"], r.text
    assert [v["version"] for v in json.loads(ok(data(server, "versions", name, "--json")).stdout)] == [1]
