"""The server's own HTTPS (`--tls-cert/--tls-key`, and `--tls-client-ca` to require client
certificates) with certificates made here by openssl: the unmodified mlflow client trusts the
server through MLFLOW_TRACKING_SERVER_CERT_PATH and presents MLFLOW_TRACKING_CLIENT_CERT_PATH;
the CLI trusts it through SSL_CERT_FILE. Plain HTTP, unknown CAs and missing or foreign
client certificates get no answer."""

import os
import subprocess
import uuid

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from conftest import SlipwayServer, slipway_bin

ADMIN = ("admin", "admin-password-" + uuid.uuid4().hex[:8])


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(cwd, ca, name, subject, extensions):
    """A key and a certificate for `subject` signed by `ca` (a CA made by `make_ca`)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=cwd,
    )


def make_ca(cwd, name):
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign", "-out", f"{name}.pem", cwd=cwd,
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    issue(d, "ca", "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for ca, name in (("ca", "client"), ("other-ca", "stranger")):
        issue(d, ca, name, f"/CN={name}", "extendedKeyUsage=clientAuth\n")
        # What requests (and so the mlflow client) takes: certificate and key in one file.
        (d / f"{name}-bundle.pem").write_text((d / f"{name}.pem").read_text() + (d / f"{name}.key").read_text())
    return d


class TlsServer(SlipwayServer):
    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"


def start(tmp_path_factory, certs, client_ca: bool):
    root = tmp_path_factory.mktemp("slipway-tls")
    args = ["--auth", "true", "--tls-cert", certs / "server.pem", "--tls-key", certs / "server.key"]
    ready = {"verify": str(certs / "ca.pem")}
    if client_ca:
        args += ["--tls-client-ca", certs / "ca.pem"]
        ready["cert"] = str(certs / "client-bundle.pem")
    env = {**os.environ, "SLIPWAY_AUTH_ADMIN_PASSWORD": ADMIN[1]}
    srv = TlsServer(root / "data", root / "logs", args, env=env, test_backends=False)
    srv.ready_kwargs = ready
    return srv.start()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory, certs, server):
    srv = start(tmp_path_factory, certs, client_ca=False)
    yield srv
    srv.stop()
    server.use()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, certs, server):
    srv = start(tmp_path_factory, certs, client_ca=True)
    yield srv
    srv.stop()
    server.use()


@pytest.fixture
def client_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return monkeypatch


def test_the_mlflow_client_and_the_cli_work_over_https_and_nothing_else_does(https_server, certs, client_env):
    client_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs / "ca.pem"))
    https_server.use()
    exp = mlflow.create_experiment("tls-" + uuid.uuid4().hex[:6])
    with mlflow.start_run(experiment_id=exp):
        mlflow.log_metric("m", 2.0)
    assert MlflowClient().get_experiment(exp).experiment_id == exp

    health = https_server.url + "/health"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(health, timeout=5)  # the server's CA is not the system's
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(health.replace("https", "http"), timeout=5)  # no plain HTTP on the port

    cli = [slipway_bin(), "users", "list", "--json", "--tracking-uri", https_server.url]
    # The CA the mlflow client is told to trust, and SSL_CERT_FILE, each work for slipway commands.
    bare = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "MLFLOW_TRACKING_SERVER_CERT_PATH")}
    for trust in ({"MLFLOW_TRACKING_SERVER_CERT_PATH": str(certs / "ca.pem")}, {"SSL_CERT_FILE": str(certs / "ca.pem")}):
        trusted = subprocess.run(cli, env={**bare, **trust}, capture_output=True, text=True, timeout=30)
        assert trusted.returncode == 0 and "admin" in trusted.stdout, (trust, trusted.stderr)
    untrusted = subprocess.run(cli, env=bare, capture_output=True, text=True, timeout=30)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower(), untrusted.stderr


def test_client_certificates_from_the_ca_are_required_when_it_is_named(mtls_server, certs, client_env):
    client_env.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(certs / "ca.pem"))
    client_env.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(certs / "client-bundle.pem"))
    mtls_server.use()
    exp = mlflow.create_experiment("mtls-" + uuid.uuid4().hex[:6])
    assert MlflowClient().get_experiment(exp).name.startswith("mtls-")

    url, ca = mtls_server.url + "/health", str(certs / "ca.pem")
    assert requests.get(url, verify=ca, cert=str(certs / "client-bundle.pem"), timeout=5).status_code == 200
    for cert in (None, str(certs / "stranger-bundle.pem")):
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=ca, cert=cert, timeout=5)

    # slipway commands read the same variables: the CA to trust and the certificate to present.
    cli = [slipway_bin(), "users", "list", "--json", "--tracking-uri", mtls_server.url]
    with_cert = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert with_cert.returncode == 0 and "admin" in with_cert.stdout, with_cert.stderr
    for bundle in ("stranger-bundle.pem", None):
        env = dict(os.environ)
        if bundle:
            env["MLFLOW_TRACKING_CLIENT_CERT_PATH"] = str(certs / bundle)
        else:
            del env["MLFLOW_TRACKING_CLIENT_CERT_PATH"]
        refused = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0, (bundle, refused.stdout)
    env = {**os.environ, "MLFLOW_TRACKING_CLIENT_CERT_PATH": str(certs / "ca.pem")}
    keyless = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=30)
    assert keyless.returncode != 0 and "private key" in keyless.stderr, keyless.stderr
