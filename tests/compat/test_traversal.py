"""Path traversal on the proxied artifact API (/api/2.0/mlflow-artifacts/artifacts).

Requests are sent with http.client so that ``..`` segments and percent-encodings reach
the server byte for byte (``requests`` normalises dot segments).

Nothing here ever targets a real system file for writing: every write/delete attempt
aims at a sandbox folder next to the server's data dir, using enough ``..`` segments
to climb to ``/`` and then the sandbox's absolute path.
"""

import hashlib
import json
import http.client
import os
import uuid
from pathlib import Path
from urllib.parse import quote

import mlflow
import pytest
import requests
from conftest import RawResponse, assert_json_error, unique

ART = "/api/2.0/mlflow-artifacts/artifacts"
DEPTH = 16


def raw(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
            hdrs.setdefault("Content-Type", "application/octet-stream")
        elif method in ("PUT", "POST"):
            hdrs.setdefault("Content-Length", "0")
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(message_body=body)
        r = conn.getresponse()
        return RawResponse(r.status, r.read(), dict(r.getheaders()))
    finally:
        conn.close()


def snapshot(root: Path, exclude: Path):
    """{relative path: sha256} for every file under root outside `exclude` (the data dir)
    and the server's own log folder."""
    out = {}
    skip = [Path(exclude), Path(exclude).parent / "logs"]
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if any(d == x or x in d.parents for x in skip):
            dirnames[:] = []
            continue
        for f in filenames:
            p = d / f
            try:
                out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                out[str(p.relative_to(root))] = "unreadable"
    return out


def files_containing(root: Path, needle: bytes, exclude: Path = None):
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if exclude is not None and (d == exclude or exclude in d.parents):
            dirnames[:] = []
            continue
        for f in filenames:
            p = Path(dirpath) / f
            try:
                if p.stat().st_size > 256 * 1024 * 1024:
                    continue
                if needle in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


@pytest.fixture(scope="module")
def sandbox(private_server):
    """Victim files next to (outside) the data dir, plus the data dir's root."""
    private_server.use()
    root = private_server.data_dir.parent
    outside = root / "outside"
    outside.mkdir(exist_ok=True)
    secret = f"SECRET-{uuid.uuid4().hex}"
    victim = outside / "victim.txt"
    victim.write_text(secret)
    return {
        "server": private_server,
        "root": root,
        "outside": outside,
        "victim": victim,
        "secret": secret,
        "rel_outside": str(outside).lstrip("/"),  # absolute path without the leading slash
    }


def _put_shapes(rel_outside: str, name: str):
    """Traversal shapes for uploads; all aim at <outside>/<name>."""
    target = f"{rel_outside}/{name}"
    enc_target = quote(target, safe="")  # slashes as %2F
    up = "../" * DEPTH
    return [
        ("dotdot", up + target),
        ("dotdot-after-prefix", "0/" + up + target),
        ("a/../../b", "a/" + up + target),
        ("dot-slash", "./" + up + target),
        ("enc-slash", "..%2f" * DEPTH + enc_target),
        ("enc-slash-upper", "..%2F" * DEPTH + target),
        ("enc-dots", "%2e%2e/" * DEPTH + target),
        ("enc-dots-upper", "%2E%2E/" * DEPTH + target),
        ("enc-mixed", ".%2e/" * DEPTH + target),
        ("enc-all", "%2e%2e%2f" * DEPTH + enc_target),
        ("double-enc", "%252e%252e%252f" * DEPTH + quote(enc_target, safe="")),
        ("double-enc-slash", "..%252f" * DEPTH + target),
        ("absolute", "/" + target),
        ("absolute-double-slash", "//" + target),
        ("absolute-encoded", "%2f" + enc_target),
        ("backslash", "..\\" * DEPTH + target.replace("/", "\\")),
        ("backslash-encoded", "..%5c" * DEPTH + target),
        ("file-uri", "file:///" + target),
    ]


def test_legit_artifact_round_trip(sandbox):
    """Baseline: the raw endpoints work, so rejections below are meaningful."""
    srv = sandbox["server"]
    prefix = unique("legit")
    r = raw(srv, "PUT", f"{ART}/{prefix}/dir/ok.txt", body=b"hello")
    assert r.status == 200, r.text
    r = raw(srv, "GET", f"{ART}/{prefix}/dir/ok.txt")
    assert r.status == 200 and r.body == b"hello"
    r = raw(srv, "GET", f"{ART}?path={prefix}/dir")
    assert r.status == 200, r.text
    files = json.loads(r.text)["files"]
    assert files == [{"path": "ok.txt", "is_dir": False, "file_size": 5}] or files == [
        {"path": "ok.txt", "is_dir": False, "file_size": "5"}
    ]
    r = raw(srv, "GET", f"{ART}?path={prefix}")
    assert json.loads(r.text)["files"] == [{"path": "dir", "is_dir": True}]
    r = raw(srv, "DELETE", f"{ART}/{prefix}/dir/ok.txt")
    assert r.status == 200, r.text
    r = raw(srv, "GET", f"{ART}/{prefix}/dir/ok.txt")
    assert_json_error(r, 404)


def test_put_traversal_rejected(sandbox):
    srv = sandbox["server"]
    root, data_dir = sandbox["root"], srv.data_dir
    token = uuid.uuid4().hex
    payload = f"PWNED-{token}".encode()
    before = snapshot(root, data_dir)
    failures = []
    shapes = _put_shapes(sandbox["rel_outside"], f"pwned-{token}.txt")
    for label, shape in shapes:
        r = raw(srv, "PUT", f"{ART}/{shape}", body=payload)
        if r.status != 400:
            failures.append((label, shape[:80], r.status, r.text[:200]))
            continue
        assert_json_error(r, 400)
    # security first: nothing escaped the data dir
    after = snapshot(root, data_dir)
    assert after == before, "files outside the data dir changed"
    assert files_containing(root, payload, exclude=data_dir) == [], "payload escaped"
    for d in ["/", "/tmp", os.getcwd(), str(root)]:
        assert not os.path.exists(os.path.join(d, f"pwned-{token}.txt")), d
    # policy: every shape is refused with 400 (and so nothing was written at all)
    assert not failures, failures
    assert files_containing(data_dir, payload) == [], "a rejected upload was stored"


def _get_shapes(rel_victim: str):
    """Traversal shapes for reads, aimed at the victim file (and /etc/passwd)."""
    enc = quote(rel_victim, safe="")
    up = "../" * DEPTH
    return [
        up + rel_victim,
        "0/" + up + rel_victim,
        "a/" + up + rel_victim,
        "..%2f" * DEPTH + enc,
        "%2e%2e/" * DEPTH + rel_victim,
        "%2e%2e%2f" * DEPTH + enc,
        "%252e%252e%252f" * DEPTH + quote(enc, safe=""),
        "/" + rel_victim,
        "//" + rel_victim,
        "%2f" + enc,
        "..\\" * DEPTH + rel_victim.replace("/", "\\"),
        "..%5c" * DEPTH + rel_victim,
        "file:///" + rel_victim,
        up + "etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "..%2f" * DEPTH + "etc%2fpasswd",
        "%252e%252e%252f" * DEPTH + "etc%252fpasswd",
    ]


def test_get_traversal_rejected(sandbox):
    srv = sandbox["server"]
    secret = sandbox["secret"].encode()
    shapes = _get_shapes(str(sandbox["victim"]).lstrip("/"))
    failures = []
    for shape in shapes:
        r = raw(srv, "GET", f"{ART}/{shape}")
        if secret in r.body or b"root:x:0:0" in r.body:
            failures.append((shape[:80], r.status, "LEAKED FILE CONTENT"))
        elif r.status not in (400, 404):
            failures.append((shape[:80], r.status, r.text[:200]))
        else:
            assert_json_error(r, (400, 404))
    assert not failures, failures


def test_list_traversal_rejected(sandbox):
    srv = sandbox["server"]
    outside = sandbox["outside"]
    rel_outside = sandbox["rel_outside"]
    queries = [
        "../..",
        "../../..",
        "..",
        "a/../../..",
        "..%2f..%2f..",
        "%2e%2e/%2e%2e",
        "%2e%2e%2f%2e%2e",
        "%252e%252e%252f%252e%252e",
        quote(str(outside), safe=""),
        quote("/" + str(outside), safe=""),
        "/etc",
        "//etc",
        "..\\..\\..",
        "..%5c..%5c..",
        "../" * DEPTH + rel_outside,
        quote("../" * DEPTH + rel_outside, safe=""),
        "file:///etc",
    ]
    failures = []
    for q in queries:
        r = raw(srv, "GET", f"{ART}?path={q}")
        if "victim.txt" in r.text or "passwd" in r.text:
            failures.append((q[:80], r.status, "LISTED OUTSIDE DIR"))
        elif r.status != 400:
            failures.append((q[:80], r.status, r.text[:200]))
        else:
            assert_json_error(r, 400)
    assert not failures, failures


def test_delete_traversal_rejected(sandbox):
    srv = sandbox["server"]
    victim = sandbox["victim"]
    rel_victim = str(victim).lstrip("/")
    enc = quote(rel_victim, safe="")
    up = "../" * DEPTH
    shapes = [
        up + rel_victim,
        "a/" + up + rel_victim,
        "..%2f" * DEPTH + enc,
        "%2e%2e/" * DEPTH + rel_victim,
        "%252e%252e%252f" * DEPTH + quote(enc, safe=""),
        "/" + rel_victim,
        "//" + rel_victim,
        "..\\" * DEPTH + rel_victim.replace("/", "\\"),
        up + str(victim.parent).lstrip("/"),  # the whole directory
    ]
    failures = []
    for shape in shapes:
        r = raw(srv, "DELETE", f"{ART}/{shape}")
        if not victim.exists():
            failures.append((shape[:80], r.status, "VICTIM DELETED"))
            break
        if r.status not in (400, 404):
            failures.append((shape[:80], r.status, r.text[:200]))
        else:
            assert_json_error(r, (400, 404))
    assert victim.exists() and victim.read_text() == sandbox["secret"]
    assert not failures, failures


def test_run_id_traversal_rejected_and_uploads_still_work(sandbox, tmp_path):
    srv = sandbox["server"]
    srv.use()
    api = srv.url + "/api/2.0/mlflow"
    for bad in ["../../outside", "..%2F..%2Foutside", "/etc/passwd", "a/../../b"]:
        r = requests.get(f"{api}/runs/get", params={"run_id": bad})
        assert_json_error(r, (400, 404))
        r = requests.post(
            f"{api}/runs/log-batch",
            json={"run_id": bad, "params": [{"key": "k", "value": "v"}]},
        )
        assert_json_error(r, (400, 404))
        r = requests.post(
            f"{api}/runs/set-tag", json={"run_id": bad, "key": "k", "value": "v"}
        )
        assert_json_error(r, (400, 404))

    client = mlflow.MlflowClient(tracking_uri=srv.url)
    before = snapshot(sandbox["root"], srv.data_dir)
    eid = client.create_experiment("../../" + unique("evil-exp"))
    exp = client.get_experiment(eid)
    assert ".." not in exp.artifact_location
    run = client.create_run(eid, run_name="../../../../outside/evil-run")
    assert ".." not in run.info.artifact_uri
    f = tmp_path / "legit.bin"
    content = os.urandom(2048)
    f.write_bytes(content)
    client.log_artifact(run.info.run_id, str(f), artifact_path="sub/dir")
    assert [(fi.path, fi.file_size) for fi in client.list_artifacts(run.info.run_id, "sub/dir")] == [
        ("sub/dir/legit.bin", 2048)
    ]
    out = tmp_path / "dl"
    out.mkdir()
    local = client.download_artifacts(run.info.run_id, "sub/dir/legit.bin", str(out))
    assert Path(local).read_bytes() == content
    assert snapshot(sandbox["root"], srv.data_dir) == before
    # and the upload really lives inside the data dir
    assert files_containing(srv.data_dir, content)


def test_client_side_traversal_in_artifact_path(sandbox, tmp_path):
    """Whatever the client sends for a dotted artifact_path (it may refuse, normalise, or
    send it), nothing may land outside the data dir."""
    srv = sandbox["server"]
    srv.use()
    client = mlflow.MlflowClient(tracking_uri=srv.url)
    eid = client.create_experiment(unique("client-trav"))
    rid = client.create_run(eid).info.run_id
    f = tmp_path / "x.txt"
    token = uuid.uuid4().hex.encode()
    f.write_bytes(token)
    before = snapshot(sandbox["root"], srv.data_dir)
    for ap in ["../../../../outside", "../" * DEPTH + sandbox["rel_outside"], "a/../../.."]:
        try:
            client.log_artifact(rid, str(f), artifact_path=ap)
        except Exception:
            pass  # refusing is fine
    assert snapshot(sandbox["root"], srv.data_dir) == before
    assert files_containing(sandbox["root"], token, exclude=srv.data_dir) == []
    for d in ["/", "/tmp", "/outside", os.getcwd()]:
        assert not os.path.exists(os.path.join(d, "x.txt")) or open(
            os.path.join(d, "x.txt"), "rb"
        ).read() != token, d


def test_ui_file_routes_traversal_rejected(sandbox):
    """The same shapes through what the web UI reads: the MLflow bundle's `/static-files/`
    and the file previews (`get-artifact`, as a raw query value and as the UI encodes it)."""
    srv = sandbox["server"]
    secret = sandbox["secret"].encode()
    client = mlflow.MlflowClient(srv.url)
    run = client.create_run(client.create_experiment(unique("trav-ui"))).info.run_id
    assert raw(srv, "GET", "/").status == 200
    failures = []
    for shape in _get_shapes(str(sandbox["victim"]).lstrip("/")):
        for path in (f"/static-files/{shape}", f"/get-artifact?run_uuid={run}&path={shape}",
                     f"/get-artifact?run_uuid={run}&path={quote(shape, safe='')}"):
            r = raw(srv, "GET", path)
            if secret in r.body or b"root:x:0:0" in r.body:
                failures.append((path[:90], r.status, "LEAKED FILE CONTENT"))
            elif r.status not in (400, 404):
                failures.append((path[:90], r.status, r.text[:200]))
    assert not failures, failures
