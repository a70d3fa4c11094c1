"""Shared helpers for the model-registry test files (not a test module)."""

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import requests

REG = "/api/2.0/mlflow"
AUDIT = "/api/v1/audit"
LINEAGE = "/api/v1/lineage"


class Api:
    """Raw HTTP against a server; nothing is validated client-side."""

    def __init__(self, url: str):
        self.url = url

    def get(self, path, params=None, headers=None):
        return requests.get(self.url + path, params=params, headers=headers, timeout=60)

    def post(self, path, body=None, headers=None):
        return requests.post(self.url + path, json=body, headers=headers, timeout=60)

    def patch(self, path, body=None, headers=None):
        return requests.patch(self.url + path, json=body, headers=headers, timeout=60)

    def delete(self, path, body=None, headers=None):
        return requests.delete(self.url + path, json=body, headers=headers, timeout=60)

    def put(self, path, body=None, headers=None):
        return requests.put(self.url + path, json=body, headers=headers, timeout=60)

    def audit(self, **params):
        """All audit records matching the filters, following next_page_token."""
        records, token, pages = [], None, 0
        while True:
            q = dict(params)
            if token:
                q["page_token"] = token
            r = self.get(AUDIT, params=q)
            assert r.status_code == 200, (r.status_code, r.text[:500])
            body = r.json()
            records.extend(body.get("records", []))
            token = body.get("next_page_token")
            pages += 1
            if not token:
                return records
            assert pages < 100, "audit paging does not terminate"

    def lineage(self, name, version):
        r = self.get(LINEAGE, params={"name": name, "version": str(version)})
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return r.json()


def training_data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    assert 0 < y.sum() < len(y)
    return X, y


def fit_models():
    """Two sklearn models whose predictions differ: a fitted classifier and a constant one."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = training_data()
    lr = LogisticRegression().fit(X, y)
    const = DummyClassifier(strategy="constant", constant=1).fit(X, y)
    assert (lr.predict(X) != const.predict(X)).any()
    return X, lr, const


def log_sklearn(model, **kw):
    return mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"], **kw)


def new_version(client, name, model_id, **kw):
    """Register a logged model as a new version the way the client does (source models:/<id>)."""
    return client.create_model_version(name, source=f"models:/{model_id}", model_id=model_id, **kw)


@contextmanager
def basic_auth(user, password="secret"):
    """Make the MLflow client send HTTP Basic credentials."""
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def error_code(excinfo):
    return excinfo.value.error_code


def files_under(root: Path):
    """{relative path: size} for every regular file under root."""
    root = Path(root)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)).replace(os.sep, "/"): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file()
    }


def run_cli(binary, *args, timeout=60):
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_USERNAME", None)
    env.pop("MLFLOW_TRACKING_PASSWORD", None)
    env.setdefault("NO_COLOR", "1")
    return subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def cli_json(binary, *args):
    p = run_cli(binary, *args)
    assert p.returncode == 0, f"{args} -> rc {p.returncode}\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}"
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"{args}: stdout is not JSON: {p.stdout[:2000]!r}")


def assert_no_panic(p):
    out = (p.stdout or "") + (p.stderr or "")
    assert "panicked" not in out and "RUST_BACKTRACE" not in out, out[-2000:]
