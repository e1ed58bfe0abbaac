"""Rotating the database credentials without a restart: the serving pods pick up the
rewritten DATABASE_URL_FILE on their next connection (docs/reliability.md, rotation)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from tests.conftest import PostgresServer, migrate
from tools.service_process import running_service

pytestmark = pytest.mark.slow


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


def write_atomically(path: Path, text: str) -> None:
    """As the kubelet updates a Secret volume: the new file appears whole, never half."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.replace(fresh, path)


@pytest.fixture
def two_roles(postgres: PostgresServer, empty_database: str) -> Iterator[dict[str, str]]:
    """Two login roles that may read and write the migrated test database: the old
    credentials and the new ones. Dropped after the test."""
    migrate(empty_database)
    suffix = secrets.token_hex(4)
    passwords = {f"blue_{suffix}": secrets.token_urlsafe(12),
                 f"green_{suffix}": secrets.token_urlsafe(12)}  # fmt: skip
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        for role, password in passwords.items():
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    with psycopg.connect(empty_database, autocommit=True) as owner:
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                      f"TO {', '.join(passwords)}")  # fmt: skip
    yield passwords
    database = urlsplit(empty_database).path
    in_database = urlunsplit(urlsplit(postgres.admin_url)._replace(path=database))
    with psycopg.connect(in_database, autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {', '.join(passwords)}")  # their grants
        for role in passwords:
            admin.execute(f"DROP ROLE {role}")


def test_a_rewritten_url_file_is_used_by_new_connections_without_a_restart(
    postgres: PostgresServer, empty_database: str, two_roles: dict[str, str], tmp_path: Path
) -> None:
    passwords = two_roles
    old, new = passwords
    url_file = tmp_path / "url"
    url_file.write_text(as_role(empty_database, old, passwords[old]))
    env = {"DATABASE_URL_FILE": str(url_file), "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}
    saved = os.environ.pop("DATABASE_URL", None)
    try:
        with running_service(env) as service, requests.Session() as http:
            items = f"{service.base_url}/api/v1/items"
            created = http.post(items, json={"name": "rotated"}, timeout=5)
            assert created.status_code == 201, created.text
            item = f"{items}/{created.json()['id']}"
            before = [http.get(item, timeout=5).status_code for _ in range(10)]

            # The rotation: the new credentials are written, the old role is retired and
            # its sessions end (as a managed database does when the old password expires).
            write_atomically(url_file, as_role(empty_database, new, passwords[new]))
            with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
                admin.execute(f"ALTER ROLE {old} NOLOGIN")
                admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE usename = '{old}'")  # fmt: skip
            after = [http.get(item, timeout=5).status_code for _ in range(20)]
            after.append(http.post(items, json={"name": "after"}, timeout=5).status_code)
            # This service's sessions: apps of earlier tests may still hold theirs elsewhere.
            with psycopg.connect(postgres.admin_url) as admin:
                users = {row[0] for row in admin.execute(
                    "SELECT usename FROM pg_stat_activity WHERE application_name = 'service' "
                    "AND datname = %s", (urlsplit(empty_database).path.lstrip("/"),),
                )}  # fmt: skip
            alive = service.process.poll() is None
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
    assert before == [200] * 10
    assert after == [200] * 20 + [201], after
    assert users == {new}, users
    assert alive
