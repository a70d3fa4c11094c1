"""Auth on, driven by the unmodified mlflow client: its password variables, its credentials
file, its token variable, and MLflow's own AuthServiceClient for users.

The server runs with `--auth true` and no default permission: a user sees and changes only
what they created (they MANAGE it) or were granted, as MLflow's auth app with
`default_permission = NO_PERMISSIONS`."""

import json
import os
import subprocess
import uuid

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

from conftest import SlipwayServer, slipway_bin

ADMIN_PASSWORD = "admin-password-" + uuid.uuid4().hex[:8]
ALICE_PASSWORD = "alice-password-" + uuid.uuid4().hex[:8]

CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("slipway-auth")
    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    srv = SlipwayServer(
        root / "data",
        root / "logs",
        extra_args=["--auth", "true"],
        env=env,
        test_backends=False,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def as_user(auth_server, monkeypatch, tmp_path):
    """Sets the mlflow client's credentials the way a user would, for one test."""
    auth_server.use()
    # No credentials file from the machine's real home.
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)

    def use(user=None, password=None, token=None):
        for var in CREDENTIAL_VARS:
            monkeypatch.delenv(var, raising=False)
        if user is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        if token is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)

    yield use
    if mlflow.active_run() is not None:
        mlflow.end_run()


def ensure_alice(auth_server, as_user):
    as_user("admin", ADMIN_PASSWORD)
    users = AuthServiceClient(auth_server.url)
    try:
        users.get_user("alice")
    except RestException:
        users.create_user("alice", ALICE_PASSWORD)


def test_without_an_admin_password_an_auth_server_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SLIPWAY_AUTH_ADMIN_PASSWORD"}
    proc = subprocess.run(
        [slipway_bin(), "server", "--port", "0", "--data-dir", str(tmp_path), "--auth", "true", "--mlflow-ui", "off"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "SLIPWAY_AUTH_ADMIN_PASSWORD" in proc.stderr


def test_anonymous_and_wrong_passwords_are_refused_at_once(auth_server, as_user):
    as_user()
    with pytest.raises(MlflowException) as err:
        MlflowClient().search_experiments()
    assert "UNAUTHENTICATED" in str(err.value) or "401" in str(err.value)
    as_user("alice", "not-her-password")
    with pytest.raises(MlflowException) as err:
        MlflowClient().search_experiments()
    assert "401" in str(err.value) or "UNAUTHENTICATED" in str(err.value)
    # The health check stays open for load balancers.
    assert requests.get(auth_server.url + "/health", timeout=5).status_code == 200


def test_auth_service_client_manages_users(auth_server, as_user):
    as_user("admin", ADMIN_PASSWORD)
    users = AuthServiceClient(auth_server.url)
    name = "u" + uuid.uuid4().hex[:8]
    created = users.create_user(name, "a-long-password-1")
    assert created.username == name and not created.is_admin
    assert users.get_user(name).id == created.id
    with pytest.raises(RestException) as err:
        users.create_user(name, "a-long-password-1")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(RestException) as err:
        users.create_user("u" + uuid.uuid4().hex[:8], "short")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"
    users.update_user_password(name, "another-password-2")
    users.update_user_admin(name, True)
    assert users.get_user(name).is_admin
    # The new password works and the user is an admin now.
    as_user(name, "another-password-2")
    assert AuthServiceClient(auth_server.url).get_user("admin").username == "admin"
    as_user("admin", ADMIN_PASSWORD)
    users.delete_user(name)
    with pytest.raises(RestException) as err:
        users.get_user(name)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_user_tracks_with_a_password_and_cannot_delete_or_administer(auth_server, as_user):
    ensure_alice(auth_server, as_user)
    as_user("alice", ALICE_PASSWORD)
    mlflow.set_experiment("alice-" + uuid.uuid4().hex[:6])
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_metric("loss", 0.5)
        mlflow.log_text("hello", "notes/hello.txt")
    got = MlflowClient().get_run(run.info.run_id)
    assert got.data.params == {"lr": "0.1"} and got.data.metrics == {"loss": 0.5}
    assert MlflowClient().download_artifacts(run.info.run_id, "notes/hello.txt", dst_path=os.environ["HOME"])
    # The admin's default experiment is not hers to read: it answers as a missing one would.
    for call in (MlflowClient().delete_experiment, MlflowClient().get_experiment):
        with pytest.raises(RestException) as err:
            call("0")
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert run.info.experiment_id in [e.experiment_id for e in MlflowClient().search_experiments()]
    assert "0" not in [e.experiment_id for e in MlflowClient().search_experiments()]
    with pytest.raises(RestException) as err:
        AuthServiceClient(auth_server.url).create_user("mallory", "mallory-password-1")
    assert err.value.error_code == "PERMISSION_DENIED"


def test_the_credentials_file_works_like_the_variables(auth_server, as_user):
    ensure_alice(auth_server, as_user)
    as_user()
    home = os.environ["HOME"]
    os.makedirs(f"{home}/.mlflow", exist_ok=True)
    with open(f"{home}/.mlflow/credentials", "w") as f:
        f.write(f"[mlflow]\nmlflow_tracking_username = alice\nmlflow_tracking_password = {ALICE_PASSWORD}\n")
    exp = MlflowClient().create_experiment("file-" + uuid.uuid4().hex[:6])
    assert MlflowClient().get_experiment(exp).name.startswith("file-")


def test_a_token_works_as_mlflow_tracking_token_until_revoked(auth_server, as_user):
    ensure_alice(auth_server, as_user)
    resp = requests.post(
        auth_server.url + "/api/v1/tokens",
        json={"name": "ci", "expires_in_days": 1},
        auth=("alice", ALICE_PASSWORD),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    secret, token_id = resp.json()["secret"], resp.json()["token"]["id"]
    as_user(token=secret)
    client = MlflowClient()
    name = "tok-" + uuid.uuid4().hex[:6]
    client.create_registered_model(name)
    # The audit log names alice, the token's owner.
    as_user("admin", ADMIN_PASSWORD)
    audit = requests.get(
        auth_server.url + "/api/v1/audit", params={"name": name}, auth=("admin", ADMIN_PASSWORD), timeout=10
    ).json()
    assert [r["actor"] for r in audit["records"]] == ["alice"]
    # Listed for its owner without its secret.
    listed = requests.get(auth_server.url + "/api/v1/tokens", auth=("alice", ALICE_PASSWORD), timeout=10).json()
    assert token_id in [t["id"] for t in listed["tokens"]]
    assert secret not in str(listed)
    # Revoked: the next call fails at once (401 is never retried by the client).
    gone = requests.delete(f"{auth_server.url}/api/v1/tokens/{token_id}", auth=("alice", ALICE_PASSWORD), timeout=10)
    assert gone.status_code == 200
    as_user(token=secret)
    with pytest.raises(MlflowException) as err:
        MlflowClient().get_registered_model(name)
    assert "401" in str(err.value) or "UNAUTHENTICATED" in str(err.value)


def test_a_manager_grants_and_revokes_with_auth_service_client(auth_server, as_user):
    ensure_alice(auth_server, as_user)
    as_user("admin", ADMIN_PASSWORD)
    bob = "bob" + uuid.uuid4().hex[:6]
    AuthServiceClient(auth_server.url).create_user(bob, "bob-password-1234")

    as_user("alice", ALICE_PASSWORD)
    exp = MlflowClient().create_experiment("shared-" + uuid.uuid4().hex[:6])
    alice_users = AuthServiceClient(auth_server.url)
    assert alice_users.get_user_permission("alice", "experiment", exp).permission == "MANAGE"

    as_user(bob, "bob-password-1234")
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # Bob cannot grant himself anything on alice's experiment.
    with pytest.raises(RestException) as err:
        AuthServiceClient(auth_server.url).grant_user_permission(bob, "experiment", exp, "READ")
    assert err.value.error_code == "PERMISSION_DENIED"

    as_user("alice", ALICE_PASSWORD)
    alice_users.grant_user_permission(bob, "experiment", exp, "READ")
    as_user(bob, "bob-password-1234")
    assert MlflowClient().get_experiment(exp).experiment_id == exp
    checked = AuthServiceClient(auth_server.url).get_user_permission(bob, "experiment", exp)
    assert (checked.permission, checked.allowed) == ("READ", False)
    with pytest.raises(RestException) as err:
        MlflowClient().create_run(exp)
    assert err.value.error_code == "PERMISSION_DENIED"

    as_user("alice", ALICE_PASSWORD)
    alice_users.revoke_user_permission(bob, "experiment", exp)
    as_user(bob, "bob-password-1234")
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_roles_from_auth_service_client_give_their_members_access_until_taken_away(auth_server, as_user):
    as_user("admin", ADMIN_PASSWORD)
    admin = AuthServiceClient(auth_server.url)
    bob, pw = "bob" + uuid.uuid4().hex[:6], "bob-password-1234"
    admin.create_user(bob, pw)
    team = "vision-" + uuid.uuid4().hex[:6]
    exp = MlflowClient().create_experiment(team)
    other = MlflowClient().create_experiment(team + "-other")

    role = admin.create_role("default", team, "the vision team")
    assert (role.name, role.workspace, role.description, role.permissions) == (team, "default", "the vision team", [])
    assert admin.get_role(role.id).name == team
    assert team in [r.name for r in admin.list_roles("default")]
    assert team in [r.name for r in admin.list_all_roles()]
    assert admin.list_roles("elsewhere") == []
    for bad in (
        lambda: admin.create_role("default", team),
        lambda: admin.create_role("elsewhere", team + "x"),
        lambda: admin.create_role("default", "__user_1__"),
        lambda: admin.add_role_permission(role.id, "prompt", "*", "READ"),
        lambda: admin.add_role_permission(role.id, "experiment", exp, "OWNER"),
        lambda: admin.get_role(10**9),
    ):
        with pytest.raises(RestException) as err:
            bad()
        assert err.value.error_code in ("RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")

    grant = admin.add_role_permission(role.id, "experiment", exp, "READ")
    assert (grant.role_id, grant.resource_type, grant.resource_pattern, grant.permission) == (
        role.id, "experiment", exp, "READ")
    with pytest.raises(RestException) as err:
        admin.add_role_permission(role.id, "experiment", exp, "EDIT")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"

    # Not a member yet: nothing. A member: what the role grants, in point reads and searches.
    as_user(bob, pw)
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(RestException) as err:
        AuthServiceClient(auth_server.url).create_role("default", "mine")
    assert err.value.error_code == "PERMISSION_DENIED"

    as_user("admin", ADMIN_PASSWORD)
    assignment = admin.assign_role(bob, role.id)
    assert assignment.role_id == role.id
    assert [a.user_id for a in admin.list_role_users(role.id)] == [assignment.user_id]
    listed = {u["username"]: u for u in requests.get(
        f"{auth_server.url}/api/2.0/mlflow/users/list", auth=("admin", ADMIN_PASSWORD)).json()["users"]}
    assert [r["name"] for r in listed[bob]["roles"]] == [team]

    as_user(bob, pw)
    assert MlflowClient().get_experiment(exp).name == team
    seen = [e.experiment_id for e in MlflowClient().search_experiments()]
    assert seen == [exp], "the role's experiment and nothing else"
    with pytest.raises(RestException) as err:
        MlflowClient().create_run(exp)
    assert err.value.error_code == "PERMISSION_DENIED"
    mine = AuthServiceClient(auth_server.url)
    assert [r.name for r in mine.list_user_roles(bob)] == [team]
    with pytest.raises(RestException) as err:
        mine.list_user_roles("admin")
    assert err.value.error_code == "PERMISSION_DENIED"
    perms = requests.get(f"{auth_server.url}/api/3.0/mlflow/users/current/permissions", auth=(bob, pw)).json()
    assert {(p["role_name"], p["resource_pattern"], p["permission"]) for p in perms["permissions"]} == {
        (team, exp, "READ")}

    # A changed permission holds on the next request.
    as_user("admin", ADMIN_PASSWORD)
    assert admin.update_role_permission(grant.id, "EDIT").permission == "EDIT"
    as_user(bob, pw)
    MlflowClient().create_run(exp)

    # DENY in a role beats a direct grant.
    as_user("admin", ADMIN_PASSWORD)
    admin.grant_user_permission(bob, "experiment", other, "READ")
    deny = admin.add_role_permission(role.id, "experiment", other, "DENY")
    as_user(bob, pw)
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(other)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    as_user("admin", ADMIN_PASSWORD)
    admin.remove_role_permission(deny.id)
    assert [p.id for p in admin.list_role_permissions(role.id)] == [grant.id]
    as_user(bob, pw)
    assert MlflowClient().get_experiment(other).name == team + "-other"

    # Unassigned, then the role deleted: the access goes at once.
    as_user("admin", ADMIN_PASSWORD)
    admin.unassign_role(bob, role.id)
    as_user(bob, pw)
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    as_user("admin", ADMIN_PASSWORD)
    admin.assign_role(bob, role.id)
    renamed = admin.update_role(role.id, name=team + "-renamed")
    assert (renamed.name, renamed.description) == (team + "-renamed", "the vision team")
    admin.delete_role(role.id)
    with pytest.raises(RestException) as err:
        admin.get_role(role.id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    as_user(bob, pw)
    with pytest.raises(RestException) as err:
        MlflowClient().get_experiment(exp)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_runs_the_server_starts_act_as_its_pipeline_account_with_a_token_revoked_after(tmp_path_factory, monkeypatch):
    import textwrap
    import time

    root = tmp_path_factory.mktemp("auth-pipeline")
    proj = root / "proj"
    proj.mkdir()
    name = "authpipe" + uuid.uuid4().hex[:6]
    (proj / "slipway.yaml").write_text(textwrap.dedent(f"""
        pipeline: {name}
        steps:
          hello:
            cmd: echo hello > out.txt
            outs: [out.txt]
        """))
    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    for var in CREDENTIAL_VARS:
        env.pop(var, None)
    srv = SlipwayServer(root / "data", root / "logs", extra_args=["--auth", "true", "--pipeline", str(proj)],
                        env=env, test_backends=False)
    srv.start()
    try:
        admin = ("admin", ADMIN_PASSWORD)
        trigger = f"{srv.url}/api/v1/pipelines/{name}/runs"
        assert requests.post(trigger, json={}, timeout=30).status_code == 401
        r = requests.post(trigger, json={"trigger_key": "one"}, auth=admin, timeout=30)
        assert r.status_code == 202 and r.json()["outcome"] == "started", r.text

        def finished():
            runs = requests.get(trigger, auth=admin, timeout=30).json().get("runs", [])
            return runs if runs and runs[0]["status"] not in ("running", "RUNNING") else None

        deadline = time.monotonic() + 120
        while not (runs := finished()):
            assert time.monotonic() < deadline, "the triggered run did not finish"
            time.sleep(0.3)
        assert runs[0]["status"] == "finished", (runs, srv.stderr_text())
        # It ran as the service account, whose run token is revoked now that it ended.
        tokens = requests.get(f"{srv.url}/api/v1/tokens", params={"all": "true"}, auth=admin, timeout=30).json()
        assert "tokens" in tokens, tokens
        mine = [t for t in tokens["tokens"] if t["principal"] == "slipway-pipelines"]
        assert len(mine) == 1 and mine[0]["revoked_ms"] is not None, tokens
        # The account manages the experiment it created; the admin sees its runs.
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        perm = AuthServiceClient(srv.url).get_user_permission("slipway-pipelines", "experiment", runs[0]["experiment_id"])
        assert perm.permission == "MANAGE"
    finally:
        srv.stop()


def test_the_cli_manages_users_grants_and_tokens_the_mlflow_client_then_uses(auth_server, as_user):
    """`slipway users|grants|tokens` with the admin's credentials from the mlflow variables;
    the token they mint is what the mlflow client then works with, until it is revoked."""
    def cli(*args, stdin=None):
        proc = subprocess.run(
            [slipway_bin(), *args, "--tracking-uri", auth_server.url],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc

    as_user("admin", ADMIN_PASSWORD)
    experiment = MlflowClient().create_experiment("cli-granted-" + uuid.uuid4().hex[:6])
    name = "carol-" + uuid.uuid4().hex[:6]
    carol_password = "carol-password-" + uuid.uuid4().hex[:8]
    created = cli("users", "create", name, stdin=carol_password + "\n")
    assert created.returncode == 0, created.stderr
    assert "--password" not in cli("users", "create", "--help").stdout, "no password on the command line"
    assert cli("users", "create", "x" + name, stdin="").returncode != 0, "an empty password is refused"
    listed = cli("users", "list", "--json")
    assert name in [u["username"] for u in json.loads(listed.stdout)]
    granted = cli("grants", "grant", name, "experiment", experiment, "read")
    assert granted.returncode == 0, granted.stderr
    grants = json.loads(cli("grants", "list", name, "--json").stdout)["permissions"]
    assert {"resource_type": "experiment", "resource_pattern": experiment, "permission": "READ"}.items() <= grants[0].items()

    # Carol mints a token for herself, narrower than what she holds.
    as_user(name, carol_password)
    minted = cli("tokens", "create", "ci", "--days", "1", "--scope", f"experiment:{experiment}:READ")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.startswith("slw_") and "shown once" in minted.stderr
    as_user(token=token)
    assert MlflowClient().get_experiment(experiment).experiment_id == experiment
    with pytest.raises(MlflowException):
        MlflowClient().set_experiment_tag(experiment, "k", "v")

    as_user(name, carol_password)
    tokens = json.loads(cli("tokens", "list", "--json").stdout)
    ours = [t for t in tokens if t["name"] == "ci"]
    assert len(ours) == 1 and ours[0]["principal"] == name and ours[0]["revoked_ms"] is None
    assert cli("tokens", "revoke", ours[0]["id"]).returncode == 0
    as_user(token=token)
    with pytest.raises(MlflowException):
        MlflowClient().get_experiment(experiment)

    # Carol may not administer; the admin removes her.
    as_user(name, carol_password)
    refused = cli("users", "list")
    assert refused.returncode != 0 and "PERMISSION_DENIED" in refused.stderr
    as_user("admin", ADMIN_PASSWORD)
    assert cli("grants", "revoke", name, "experiment", experiment).returncode == 0

    # A role made, granted and assigned from the shell gives carol the experiment again.
    role = "cli-role-" + uuid.uuid4().hex[:6]
    for step in (("roles", "create", role, "--description", "from the shell"),
                 ("roles", "grant", role, "experiment", experiment, "edit"),
                 ("roles", "assign", role, name)):
        done = cli(*step)
        assert done.returncode == 0, (step, done.stderr)
    shown = json.loads(cli("roles", "show", role, "--json").stdout)
    assert [(p["resource_pattern"], p["permission"]) for p in shown["role"]["permissions"]] == [(experiment, "EDIT")]
    assert len(shown["assignments"]) == 1
    as_user(name, carol_password)
    MlflowClient().set_experiment_tag(experiment, "via", "role")
    as_user("admin", ADMIN_PASSWORD)
    assert cli("roles", "revoke", role, "experiment", experiment).returncode == 0
    missing = cli("roles", "revoke", role, "experiment", experiment)
    assert missing.returncode != 0 and "no permission" in missing.stderr
    assert cli("roles", "unassign", role, name).returncode == 0
    assert cli("roles", "delete", role).returncode == 0
    assert role not in cli("roles", "list").stdout

    assert cli("users", "delete", name).returncode == 0
    assert cli("users", "show", name).returncode != 0
