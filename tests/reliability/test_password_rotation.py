"""Rotating the database credentials without a restart: the serving pods pick up the
rewritten DATABASE_URL_FILE on their next connection (docs/reliability.md, rotation)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Rotation:
    """What the service answered before and after the credentials changed under it."""

    before: list[int]
    after: list[int]
    users: set[str]  # the roles of the service's sessions at the end
    alive: bool


def rotate_while_serving(
    postgres: PostgresServer, database: str, env: dict[str, str], rotate: Callable[[], str]
) -> Rotation:
    """Serve, rotate (which returns the role whose sessions then end), serve again."""
    saved = os.environ.pop("DATABASE_URL", None)
    try:
        with running_service(env) as service, requests.Session() as http:
            items = f"{service.base_url}/api/v1/items"
            created = http.post(items, json={"name": "rotated"}, timeout=5)
            assert created.status_code == 201, created.text
            item = f"{items}/{created.json()['id']}"
            before = [http.get(item, timeout=5).status_code for _ in range(10)]
            ended = rotate()
            with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
                admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE usename = '{ended}'")  # fmt: skip
            after = [http.get(item, timeout=5).status_code for _ in range(20)]
            after.append(http.post(items, json={"name": "after"}, timeout=5).status_code)
            # This service's sessions: apps of earlier tests may still hold theirs elsewhere.
            with psycopg.connect(postgres.admin_url) as admin:
                users = {row[0] for row in admin.execute(
                    "SELECT usename FROM pg_stat_activity WHERE application_name = 'service' "
                    "AND datname = %s", (urlsplit(database).path.lstrip("/"),),
                )}  # fmt: skip
            return Rotation(before, after, users, service.process.poll() is None)
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved


def test_a_rewritten_url_file_is_used_by_new_connections_without_a_restart(
    postgres: PostgresServer, empty_database: str, two_roles: dict[str, str], tmp_path: Path
) -> None:
    passwords = two_roles
    old, new = passwords
    url_file = tmp_path / "url"
    url_file.write_text(as_role(empty_database, old, passwords[old]))
    env = {"DATABASE_URL_FILE": str(url_file), "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}

    def rotate() -> str:
        # The new credentials are written, the old role is retired and its sessions end
        # (as a managed database does when the old password expires).
        write_atomically(url_file, as_role(empty_database, new, passwords[new]))
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {old} NOLOGIN")
        return old

    rotation = rotate_while_serving(postgres, empty_database, env, rotate)
    assert rotation.before == [200] * 10
    assert rotation.after == [200] * 20 + [201], rotation.after
    assert rotation.users == {new}, rotation.users
    assert rotation.alive


def test_a_rotated_password_file_is_used_by_new_connections_without_a_restart(
    postgres: PostgresServer, empty_database: str, two_roles: dict[str, str], tmp_path: Path
) -> None:
    """The database by its parts, credentials from a basic-auth Secret's files: what
    CloudNativePG does on a managed role's Secret change (`cnpg.io/reload`), the same role
    with a new password, the kubelet rewriting `password` (docs/cloudnativepg.md)."""
    role, old_password = next(iter(two_roles.items()))
    (tmp_path / "username").write_text(role)
    write_atomically(tmp_path / "password", old_password)
    parts = urlsplit(empty_database)
    env = {"DATABASE_HOST": str(parts.hostname), "DATABASE_PORT": str(parts.port),
           "DATABASE_NAME": parts.path.lstrip("/"),
           "DATABASE_USER_FILE": str(tmp_path / "username"),
           "DATABASE_PASSWORD_FILE": str(tmp_path / "password"),
           "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}  # fmt: skip

    def rotate() -> str:
        new_password = secrets.token_urlsafe(12)
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} PASSWORD '{new_password}'")
        write_atomically(tmp_path / "password", new_password)
        return role  # its sessions end: the old password can no longer open new ones

    rotation = rotate_while_serving(postgres, empty_database, env, rotate)
    assert rotation.before == [200] * 10
    assert rotation.after == [200] * 20 + [201], rotation.after
    assert rotation.users == {role}, rotation.users
    assert rotation.alive
