"""A 2 GiB artifact streams through the proxy in both directions with bounded server memory.

The upload is generated on the fly and the download is hashed as it arrives, so neither the
test nor (if streaming works) the server ever holds the file. The server's peak resident set
(VmHWM, from /proc) must stay far below the file size.
"""

import hashlib

import requests

SIZE = 2 * 1024**3
CHUNK = 1024 * 1024
# Far below the 2 GiB that buffering would need; streaming stays in the tens of MiB.
PEAK_RSS_LIMIT_KIB = 256 * 1024


def _chunk(i: int) -> bytes:
    # Cheap, position-dependent content so a reordered or truncated stream is caught.
    return (i.to_bytes(8, "little") * (CHUNK // 8))


def _peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("VmHWM not found")


def test_two_gib_artifact_streams_with_bounded_memory(private_server):
    url = f"{private_server.url}/api/2.0/mlflow-artifacts/artifacts/big/blob.bin"
    expected = hashlib.sha256()

    def body():
        for i in range(SIZE // CHUNK):
            c = _chunk(i)
            expected.update(c)
            yield c

    r = requests.put(url, data=body(), timeout=600)
    assert r.status_code == 200, r.text

    got = hashlib.sha256()
    total = 0
    with requests.get(url, stream=True, timeout=600) as resp:
        assert resp.status_code == 200
        assert int(resp.headers["content-length"]) == SIZE
        for c in resp.iter_content(CHUNK):
            got.update(c)
            total += len(c)
    assert total == SIZE
    assert got.hexdigest() == expected.hexdigest()

    peak = _peak_rss_kib(private_server.proc.pid)
    assert peak < PEAK_RSS_LIMIT_KIB, f"server peak RSS {peak} KiB while streaming 2 GiB"

    listed = requests.get(
        f"{private_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": "big"}, timeout=30
    ).json()
    assert listed["files"] == [{"path": "blob.bin", "is_dir": False, "file_size": SIZE}]

    # Free the disk again; the listing then shows nothing under the folder.
    assert requests.delete(url, timeout=60).status_code == 200
    after = requests.get(
        f"{private_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": "big"}, timeout=30
    ).json()
    assert after.get("files", []) == []
