"""OIDC bearer tokens against a real OpenID provider process (npm's oauth2-mock-server on
loopback, tests/oidc/idp.mjs, installed by scripts/oidc-env.sh): the unmodified mlflow client
sends the provider's JWT as MLFLOW_TRACKING_TOKEN; its user is made on first sight and holds
what it creates. Forged, expired, foreign and misaddressed tokens get 401; a rotated key is
fetched once, and made-up key ids cause no fetch storm."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from conftest import SlipwayServer, free_port

API = "/api/2.0/mlflow"
AUDIENCE = "slipway-tests"
CLIENT_ID = "slipway-ui"
ADMIN = ("admin", "admin-password-" + uuid.uuid4().hex[:8])
IDP = Path(__file__).resolve().parents[1] / "oidc" / "idp.mjs"


@pytest.fixture(scope="module")
def idp():
    port = free_port()
    proc = subprocess.Popen(
        ["node", str(IDP), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    line = proc.stdout.readline()
    assert line.startswith("ready "), f"the provider did not start: {line!r}"
    proc.issuer = line.split(" ", 1)[1].strip()
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def oidc_server(idp, tmp_path_factory, server):
    root = tmp_path_factory.mktemp("slipway-oidc")
    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": ADMIN[1]}
    args = ["--auth", "true", "--auth-oidc-issuer", idp.issuer, "--auth-oidc-audience", AUDIENCE,
            "--auth-oidc-client-id", CLIENT_ID]
    srv = SlipwayServer(root / "data", root / "logs", args, env=env, test_backends=False)
    srv.start()
    yield srv
    srv.stop()
    server.use()


def token(idp, username, aud=AUDIENCE, **claims):
    form = {"grant_type": "client_credentials", "aud": aud, "preferred_username": username, **claims}
    resp = requests.post(idp.issuer + "/token", data=form, timeout=10)
    assert resp.ok, resp.text
    return resp.json()["access_token"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(jwt: str):
    header, payload, signature = jwt.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload))), signature


def bearer(url, path, jwt, method="GET", **kw):
    return requests.request(method, url + path, headers={"Authorization": f"Bearer {jwt}"}, timeout=30, **kw)


@pytest.fixture
def with_token(monkeypatch, tmp_path, oidc_server):
    oidc_server.use()
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return lambda jwt: monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", jwt)


def test_the_mlflow_client_works_with_the_providers_token_and_its_user_is_made_on_first_sight(idp, oidc_server, with_token):
    dana = "dana-" + uuid.uuid4().hex[:6]
    assert requests.get(oidc_server.url + f"{API}/users/get", params={"username": dana}, auth=ADMIN, timeout=10).status_code == 404
    with_token(token(idp, dana))
    exp = mlflow.create_experiment("oidc-" + dana)
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_metric("m", 1.0)
    made = requests.get(oidc_server.url + f"{API}/users/get", params={"username": dana}, auth=ADMIN, timeout=10)
    assert made.ok and made.json()["user"]["is_admin"] is False
    model = "oidc-model-" + dana
    MlflowClient().create_registered_model(model)
    # The audit log names the provider's user as the actor.
    audit = requests.get(oidc_server.url + "/api/v1/audit", params={"actor": dana}, auth=ADMIN, timeout=10).json()
    assert {r["actor"] for r in audit["records"]} == {dana}
    assert model in [r["name"] for r in audit["records"] if r["action"] == "create_registered_model"], audit
    # Another of the provider's users sees nothing of dana's.
    with_token(token(idp, "erin-" + uuid.uuid4().hex[:6]))
    with pytest.raises(MlflowException, match="does not exist"):
        MlflowClient().get_experiment(exp)


def test_the_providers_groups_claim_gives_the_roles_of_those_names_their_grants(idp, oidc_server, with_token):
    url, suffix = oidc_server.url, uuid.uuid4().hex[:6]
    exp = requests.post(url + f"{API}/experiments/create", json={"name": "grouped-" + suffix}, auth=ADMIN,
                        timeout=10).json()["experiment_id"]
    role = requests.post(url + "/api/3.0/mlflow/roles/create", json={"workspace": "default", "name": "ml-" + suffix},
                         auth=ADMIN, timeout=10).json()["role"]
    added = requests.post(url + "/api/3.0/mlflow/roles/permissions/add", auth=ADMIN, timeout=10, json={
        "role_id": role["id"], "resource_type": "experiment", "resource_pattern": exp, "permission": "READ"})
    assert added.ok, added.text

    member = token(idp, "hana-" + suffix, groups=f"ml-{suffix},no-such-group")
    outsider = token(idp, "ivan-" + suffix, groups="no-such-group")
    with_token(member)
    assert MlflowClient().get_experiment(exp).name == "grouped-" + suffix
    assert [e.experiment_id for e in MlflowClient().search_experiments()] == [exp]
    with pytest.raises(MlflowException, match="PERMISSION_DENIED"):
        MlflowClient().create_run(exp)
    with_token(outsider)
    with pytest.raises(MlflowException, match="does not exist"):
        MlflowClient().get_experiment(exp)
    assert MlflowClient().search_experiments() == []

    # What the group may do is this server's to say: taken away, it holds on the next request.
    removed = requests.delete(url + "/api/3.0/mlflow/roles/permissions/remove", auth=ADMIN, timeout=10,
                              json={"role_permission_id": added.json()["role_permission"]["id"]})
    assert removed.ok, removed.text
    with_token(member)
    with pytest.raises(MlflowException, match="does not exist"):
        MlflowClient().get_experiment(exp)


def test_forged_expired_and_misaddressed_tokens_are_refused(idp, oidc_server):
    url, path = oidc_server.url, f"{API}/experiments/search?max_results=1"
    good = token(idp, "frank")
    assert bearer(url, path, good).status_code == 200
    header, payload, signature = parts(good)

    refused = {
        "another audience": token(idp, "frank", aud="someone-else"),
        "expired": token(idp, "frank", exp_offset="-3600"),
        "alg none": f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{b64(json.dumps(payload).encode())}.",
        "a changed payload": f"{good.split('.')[0]}.{b64(json.dumps({**payload, 'preferred_username': 'admin2'}).encode())}.{signature}",
        "a local account's name": token(idp, "admin"),
    }
    # HS256 keyed with the provider's public key: the classic algorithm confusion.
    jwks = requests.get(idp.issuer + "/jwks", timeout=10).text.encode()
    hs_header = b64(json.dumps({**header, "alg": "HS256"}).encode())
    hs_payload = b64(json.dumps(payload).encode())
    mac = hmac.new(jwks, f"{hs_header}.{hs_payload}".encode(), hashlib.sha256).digest()
    refused["HS256 keyed with the public key"] = f"{hs_header}.{hs_payload}.{b64(mac)}"
    for what, jwt in refused.items():
        resp = bearer(url, path, jwt)
        assert resp.status_code == 401, f"{what}: {resp.status_code} {resp.text}"
        assert resp.json()["error_code"] == "UNAUTHENTICATED", what


def test_a_rotated_key_is_fetched_once_and_made_up_key_ids_fetch_nothing(idp, oidc_server):
    url, path = oidc_server.url, f"{API}/experiments/search?max_results=1"
    before = {k["kid"] for k in requests.get(idp.issuer + "/jwks", timeout=10).json()["keys"]}
    idp.stdin.write("rotate\n")
    idp.stdin.flush()
    rotated = idp.stdout.readline().split()[-1]
    assert rotated not in before
    # The provider signs with its keys in turn: some of these carry the new kid.
    tokens = [token(idp, "grace") for _ in range(4)]
    assert rotated in {parts(t)[0]["kid"] for t in tokens}
    fetched = jwks_hits(idp)
    for t in tokens:
        assert bearer(url, path, t).status_code == 200, parts(t)[0]
    assert jwks_hits(idp) == fetched + 1, "the new key was fetched once"
    # A made-up kid is refused at once, and fetches nothing: the last fetch was moments ago.
    fetched = jwks_hits(idp)
    header, payload, signature = parts(tokens[0])
    made_up = f"{b64(json.dumps({**header, 'kid': 'no-such-key'}).encode())}.{tokens[0].split('.')[1]}.{signature}"
    for _ in range(20):
        resp = bearer(url, path, made_up)
        assert resp.status_code == 401 and "no-such-key" in resp.json()["message"], resp.text
    assert jwks_hits(idp) == fetched, "unknown key ids within the refetch interval fetch nothing"


def jwks_hits(idp) -> int:
    idp.stdin.write("jwks-hits\n")
    idp.stdin.flush()
    return int(idp.stdout.readline().split()[-1])


def login_as(idp, username, groups=""):
    idp.stdin.write(f"login {username} {groups}\n")
    idp.stdin.flush()
    assert idp.stdout.readline().strip() == f"login {username}"


def test_a_browser_logs_in_through_the_provider_and_its_session_holds_until_logout(idp, oidc_server, page):
    url, suffix = oidc_server.url, uuid.uuid4().hex[:6]
    exp = requests.post(url + f"{API}/experiments/create", json={"name": "browser-" + suffix}, auth=ADMIN,
                        timeout=10).json()["experiment_id"]
    role = requests.post(url + "/api/3.0/mlflow/roles/create", json={"workspace": "default", "name": "web-" + suffix},
                         auth=ADMIN, timeout=10).json()["role"]
    requests.post(url + "/api/3.0/mlflow/roles/permissions/add", auth=ADMIN, timeout=10, json={
        "role_id": role["id"], "resource_type": "experiment", "resource_pattern": exp, "permission": "READ"})
    kim = "kim-" + suffix
    login_as(idp, kim, "web-" + suffix)

    # A page that needs a user sends the browser through the provider and back to it.
    page.goto(url + "/ui/lineage")
    assert page.url == url + "/ui/lineage", page.url
    assert "Lineage" in page.title(), page.content()[:500]
    session = [c for c in page.context.cookies() if c["name"] == "slipway_session"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Lax", session
    assert not [c for c in page.context.cookies() if c["name"] == "slipway_login" and c["value"]]

    # The session is kim's, with the provider's groups: the API answers the page's own calls.
    found = page.request.get(url + "/ajax-api/2.0/mlflow/experiments/search?max_results=10")
    assert found.ok and [e["experiment_id"] for e in found.json()["experiments"]] == [exp], found.text()
    me = page.request.get(url + "/ajax-api/2.0/mlflow/users/current").json()["user"]
    assert me["username"] == kim and me["is_admin"] is False
    # A change with the cookie must come from this server's pages, not another site's.
    create = url + "/ajax-api/2.0/mlflow/experiments/create"
    forged = page.request.post(create, data={"name": "forged-" + suffix}, headers={"Origin": "http://evil.example"})
    assert forged.status == 403, forged.text()
    assert page.request.post(create, data={"name": "unsigned-" + suffix}).status == 403
    own = page.request.post(create, data={"name": "own-" + suffix}, headers={"Origin": url})
    assert own.ok, own.text()

    # Logging out ends the session; an API call is then refused, a page sent to log in again.
    page.goto(url + "/auth/logout")
    assert "Logged out" in page.content()
    assert page.request.get(url + "/ajax-api/2.0/mlflow/experiments/search").status == 401
    login_as(idp, "admin")
    page.goto(url + "/ui/lineage")
    assert "Login failed" in page.content() and "local account" in page.content(), page.content()[:800]
    assert not [c for c in page.context.cookies() if c["name"] == "slipway_session" and c["value"]]


def test_a_callback_that_is_not_for_this_browsers_login_is_refused(idp, oidc_server):
    url = oidc_server.url
    stranger = requests.get(url + "/auth/callback?code=made-up&state=made-up", timeout=10)
    assert stranger.status_code == 401 and "expired or was started in another browser" in stranger.text

    def start(next_path="/ui/lineage"):
        """A login as a browser makes it, up to the provider's answer: the callback's URL."""
        browser = requests.Session()
        to_provider = browser.get(url + "/auth/login", params={"next": next_path}, allow_redirects=False, timeout=10)
        assert to_provider.status_code == 302 and "code_challenge_method=S256" in to_provider.headers["location"]
        back = browser.get(to_provider.headers["location"], allow_redirects=False, timeout=10)
        assert back.status_code == 302 and back.headers["location"].startswith(url + "/auth/callback?")
        return browser, back.headers["location"]

    login_as(idp, "lee-" + uuid.uuid4().hex[:6])
    browser, answer = start()
    tampered = browser.get(answer.replace("state=", "state=x"), allow_redirects=False, timeout=10)
    assert tampered.status_code == 401 and "not for the login this browser started" in tampered.text
    assert "slipway_session" not in browser.cookies
    # Another browser cannot finish this one's login: it lacks the attempt's cookie.
    thief = requests.get(answer, allow_redirects=False, timeout=10)
    assert thief.status_code == 401 and "slipway_session" not in thief.cookies
    # The code once used by its own browser works once.
    browser, answer = start()
    done = browser.get(answer, allow_redirects=False, timeout=10)
    assert done.status_code == 302 and done.headers["location"] == "/ui/lineage" and "slipway_session" in browser.cookies
    me = browser.get(url + f"{API}/users/current", timeout=10)
    assert me.ok and me.json()["user"]["username"].startswith("lee-"), me.text
    # A next that leaves the server is not followed.
    browser, answer = start("//evil.example/x")
    assert browser.get(answer, allow_redirects=False, timeout=10).headers["location"] == "/ui/"
