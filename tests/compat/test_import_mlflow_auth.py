"""`slipway import mlflow --auth-db` against a real `mlflow server --app-name basic-auth` 3.17.2.

MLflow's own AuthServiceClient makes users (werkzeug password hashes), a role with members and
permissions, and direct per-user permissions; the server is stopped, its tracking and auth
databases imported, and Slipway started with auth on: each user logs in with the password
MLflow knew and sees exactly what MLflow granted them; a second import changes nothing."""

import json
import os
import uuid
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, ServerProcess, SlipwayServer, slipway_bin
from mlflow.exceptions import RestException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient
from registry_helpers import run_cli

MLFLOW = REPO_ROOT / ".venv" / "bin" / "mlflow"
ADMIN_PASSWORD = "mlflow-admin-" + uuid.uuid4().hex[:8]
PASSWORDS = {"ana": "ana-password-" + uuid.uuid4().hex[:6], "ben": "ben-password-" + uuid.uuid4().hex[:6]}


class MlflowAuthServer(ServerProcess):
    name = "mlflow-basic-auth"
    startup_timeout = 120
    stop_timeout = 20

    def __init__(self, root: Path):
        ini = root / "auth.ini"
        ini.write_text(f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{root}/auth.db\n"
                       "admin_username = admin\n"
                       "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "MLFLOW_FLASK_SERVER_SECRET_KEY": "import-test"}
        super().__init__(root / "mlflow-logs", env=env, cwd=root)
        self.root = root

    def command(self):
        return [MLFLOW, "server", "--host", "127.0.0.1", "--port", self.port, "--app-name", "basic-auth",
                "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
                "--default-artifact-root", self.root / "mlartifacts"]


@pytest.fixture
def creds(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)

    def use(user, password):
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return use


def slipway_import(target, root):
    p = run_cli(slipway_bin(), "import", "mlflow", "--from", f"sqlite:///{root}/mlflow.db",
                "--auth-db", f"sqlite:///{root}/auth.db", "--json", "--data-dir", str(target.data_dir), timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["auth"]


def test_mlflow_users_roles_and_permissions_carry_over(tmp_path, creds):
    mlflow_srv = MlflowAuthServer(tmp_path)
    mlflow_srv.start()
    try:
        creds("admin", ADMIN_PASSWORD)
        admin, tracking = AuthServiceClient(mlflow_srv.url), MlflowClient(mlflow_srv.url)
        for name, password in PASSWORDS.items():
            admin.create_user(name, password)
        team_exp = tracking.create_experiment("team-exp")
        ana_exp = tracking.create_experiment("ana-only")
        hidden = tracking.create_experiment("hidden")
        tracking.create_registered_model("team-model")
        role = admin.create_role("default", "vision", "the vision team")
        admin.add_role_permission(role.id, "experiment", team_exp, "EDIT")
        admin.add_role_permission(role.id, "registered_model", "*", "READ")
        admin.add_role_permission(role.id, "prompt", "*", "READ")
        admin.assign_role("ana", role.id)
        admin.assign_role("ben", role.id)
        admin.grant_user_permission("ana", "experiment", ana_exp, "MANAGE")
        # What MLflow itself answers is what Slipway must answer after the import.
        creds("ana", PASSWORDS["ana"])
        assert MlflowClient(mlflow_srv.url).get_experiment(ana_exp).name == "ana-only"
    finally:
        mlflow_srv.stop()

    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": "slipway-admin-" + uuid.uuid4().hex[:8]}
    target = SlipwayServer(tmp_path / "slipway", tmp_path / "slipway-logs", ["--auth", "true"], env=env,
                           test_backends=False)
    report = slipway_import(target, tmp_path)
    # MLflow's admin meets Slipway's (made at the server's first start, not yet run): imported.
    assert report["users"]["created"] == 3 and report["users"]["skipped"] == 0, report
    assert report["roles"]["created"] == 1 and report["memberships"] == 2, report
    # vision's two (its prompt permission has no counterpart), ana's own, and the MANAGE MLflow
    # gave admin on the four objects admin created.
    assert report["grants"] == 7, report
    assert report["schema_revision"], report
    assert any("prompt" in s for s in report["skipped"]), report["skipped"]

    target.start()
    try:
        for name in PASSWORDS:
            creds(name, PASSWORDS[name])
            client = MlflowClient(target.url)
            assert client.get_experiment(team_exp).name == "team-exp"
            client.create_run(team_exp)
            assert client.get_registered_model("team-model").name == "team-model"
            with pytest.raises(RestException) as err:
                client.get_experiment(hidden)
            assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
            roles = AuthServiceClient(target.url).list_user_roles(name)
            assert [(r.name, r.description) for r in roles] == [("vision", "the vision team")]
        creds("ana", PASSWORDS["ana"])
        MlflowClient(target.url).delete_experiment(ana_exp)
        creds("ben", PASSWORDS["ben"])
        with pytest.raises(RestException):
            MlflowClient(target.url).get_experiment(ana_exp)
        # A wrong password is still wrong, and MLflow's admin is an administrator here.
        bad = requests.get(f"{target.url}/api/2.0/mlflow/users/current", auth=("ana", "not-her-password"), timeout=10)
        assert bad.status_code == 401
        creds("admin", ADMIN_PASSWORD)
        assert AuthServiceClient(target.url).get_user("ben").username == "ben"
    finally:
        target.stop()

    again = slipway_import(target, tmp_path)
    assert again["users"]["created"] == 0 and again["users"]["unchanged"] == 3, again
    assert again["roles"] == {"created": 0, "updated": 0, "unchanged": 1, "skipped": 0}, again
    assert again["memberships"] == 0, again

    # The tracking database given as the auth one: a clear refusal.
    p = run_cli(slipway_bin(), "import", "mlflow", "--from", f"sqlite:///{tmp_path}/mlflow.db",
                "--auth-db", f"sqlite:///{tmp_path}/mlflow.db", "--data-dir", str(target.data_dir), timeout=120)
    assert p.returncode != 0 and "not an MLflow auth database" in p.stderr, p.stderr
