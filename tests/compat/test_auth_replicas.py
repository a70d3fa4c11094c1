"""Two `slipway server --auth true` replicas on one PostgreSQL database: what one replica
acknowledges (a token revoked, a password changed, a grant taken away, a user deleted) the
other enforces on its very next request, with no wait, though both cache verified credentials.

Needs the PostgreSQL server scripts/test.sh starts (SLIPWAY_TEST_PG_URL)."""

import os
import subprocess
import uuid

import pytest
import requests
from conftest import SlipwayServer

API = "/api/2.0/mlflow"
ADMIN = ("admin", "admin-password-" + uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def pair(tmp_path_factory, server):
    pg = os.environ.get("SLIPWAY_TEST_PG_URL")
    assert pg, "SLIPWAY_TEST_PG_URL is not set: run scripts/test.sh (it starts PostgreSQL)"
    name = "auth_replicas_" + uuid.uuid4().hex
    subprocess.run(["psql", pg, "-qc", f"CREATE DATABASE {name}"], check=True)
    db = pg.rsplit("/", 1)[0] + "/" + name
    tmp = tmp_path_factory.mktemp("auth-replicas")
    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": ADMIN[1]}
    replicas = []
    for i in range(2):
        srv = SlipwayServer(tmp / f"r{i}" / "data", tmp / f"r{i}" / "logs", ["--auth", "true"], env=env, test_backends=False)
        srv.store_uri = db
        srv.start()
        replicas.append(srv)
    yield replicas
    for s in replicas:
        s.stop()
    server.use()


def call(url, method, path, auth=None, token=None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url + path, auth=auth, headers=headers, timeout=30, **kw)


def test_what_one_replica_acknowledges_the_other_enforces_at_once(pair):
    a, b = (s.url for s in pair)
    user, password = "bob-" + uuid.uuid4().hex[:6], "bob-password-" + uuid.uuid4().hex[:8]
    assert call(a, "POST", f"{API}/users/create", ADMIN, json={"username": user, "password": password}).ok
    exp = call(a, "POST", f"{API}/experiments/create", ADMIN, json={"name": "shared-" + user}).json()["experiment_id"]
    grant = {"username": user, "resource_type": "experiment", "resource_id": exp, "permission": "READ"}
    assert call(a, "POST", "/api/3.0/mlflow/users/permissions/grant", ADMIN, json=grant).ok
    minted = call(a, "POST", "/api/v1/tokens", (user, password), json={"name": "ci"}).json()
    token, token_id = minted["secret"], minted["token"]["id"]
    get = f"{API}/experiments/get?experiment_id={exp}"

    # Both replicas know bob, his password and his token, and have verified them once (cached).
    for url in (a, b):
        assert call(url, "GET", get, (user, password)).status_code == 200
        assert call(url, "GET", get, token=token).status_code == 200

    # The token revoked on A: B refuses it on the next request.
    assert call(a, "DELETE", f"/api/v1/tokens/{token_id}", (user, password)).ok
    refused = call(b, "GET", get, token=token)
    assert refused.status_code == 401 and refused.json()["message"] == "this token was revoked"

    # The password changed on A: B refuses the old one and takes the new one.
    new_password = password + "-new"
    change = {"username": user, "password": new_password}
    assert call(a, "PATCH", f"{API}/users/update-password", ADMIN, json=change).ok
    assert call(b, "GET", get, (user, password)).status_code == 401
    assert call(b, "GET", get, (user, new_password)).status_code == 200

    # The grant taken away on A: B hides the experiment.
    revoke = {"username": user, "resource_type": "experiment", "resource_id": exp}
    assert call(a, "POST", "/api/3.0/mlflow/users/permissions/revoke", ADMIN, json=revoke).ok
    assert call(b, "GET", get, (user, new_password)).status_code == 404

    # Bob deleted on A: B no longer knows him.
    assert call(a, "DELETE", f"{API}/users/delete", ADMIN, json={"username": user}).ok
    assert call(b, "GET", f"{API}/users/current", (user, new_password)).status_code == 401
