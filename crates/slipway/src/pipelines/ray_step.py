"""Runs one pipeline step on a Ray node and sends its outs back through Slipway's blob store.

Shipped inside the step's working_dir package by `slipway run --executor ray`. The step's
command runs in its work dir; then every out (and the metrics file) is stored under
`slipway-cache/sha256/` through the tracking server's artifact proxy, hashed exactly as
`slipway_pipeline::hash` does (SHA-256 of a file; for a folder, of its files' "path\\0hash\\n"
lines in sorted order), and the manifest's hash is printed last for the runner.
Standard library only: a Ray node needs nothing installed for it.
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.request

spec = json.loads(os.environ["SLIPWAY_RAY_STEP"])
store = os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts/slipway-cache/sha256/"

code = subprocess.call(spec["cmd"], shell=True, cwd=spec["wdir"] or ".")
if code != 0:
    sys.exit(code)


def put(data_hash, body):
    req = urllib.request.Request(store + data_hash[:2] + "/" + data_hash, data=body, method="PUT")
    req.add_header("content-type", "application/octet-stream")
    urllib.request.urlopen(req, timeout=300).read()


def store_file(path):
    with open(path, "rb") as f:
        body = f.read()
    digest = hashlib.sha256(body).hexdigest()
    put(digest, body)
    return digest, len(body)


def walk(folder, prefix=""):
    for name in sorted(os.listdir(folder)):
        full = os.path.join(folder, name)
        rel = f"{prefix}/{name}" if prefix else name
        if os.path.isdir(full):
            yield from walk(full, rel)
        else:
            yield rel, full


manifest = {}
for rel in spec["collect"]:
    if os.path.isdir(rel):
        files, lines = [], hashlib.sha256()
        for name, full in walk(rel):
            digest, size = store_file(full)
            files.append([name, digest, size])
            lines.update(name.encode() + b"\0" + digest.encode() + b"\n")
        manifest[rel] = {"kind": "dir", "hash": lines.hexdigest(), "files": files}
    elif os.path.isfile(rel):
        digest, size = store_file(rel)
        manifest[rel] = {"kind": "file", "hash": digest, "size": size}
    else:
        print(f"the step did not write its out '{rel}'", flush=True)
        sys.exit(97)

body = json.dumps(manifest, sort_keys=True).encode()
manifest_hash = hashlib.sha256(body).hexdigest()
put(manifest_hash, body)
print("SLIPWAY_OUTS " + manifest_hash, flush=True)
