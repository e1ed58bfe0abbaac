"""Least privilege in the database: the SQL in docs/reliability.md ("Database roles")
makes a migration role that owns the schema and a serving role that only reads and
writes rows, with the grants from the migrations (MIGRATION_GRANT_ROLE). Run as
written, then checked from both sides."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from tests.conftest import PostgresServer
from tools.service_process import ROOT, running_service

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
ROLES = ("app_migrator", "app_rw", "app_service")


def documented_sql() -> tuple[str, str]:
    """The two SQL blocks of the "Database roles" section: cluster-wide, then in the database."""
    section = DOC.read_text().split("## Database roles", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "docs/reliability.md: expected two ```sql blocks under Database roles"
    return blocks[0], blocks[1]


def url_for(admin_url: str, user: str, password: str, database: str) -> str:
    parts = urlsplit(admin_url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


@pytest.fixture
def documented_roles(postgres: PostgresServer) -> Iterator[dict[str, str]]:
    """The documented roles and database, under names of this test's own."""
    suffix = secrets.token_hex(3)
    names = {name: f"{name}_{suffix}" for name in (*ROLES, "app")}
    passwords = {"MIGRATOR_PASSWORD": secrets.token_urlsafe(12),
                 "SERVICE_PASSWORD": secrets.token_urlsafe(12)}  # fmt: skip

    def ours(sql: str) -> str:
        for placeholder, password in passwords.items():
            sql = sql.replace(placeholder, password)
        for name, unique in names.items():
            sql = re.sub(rf"\b{name}\b", unique, sql)
        return sql

    cluster_sql, database_sql = documented_sql()
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        for statement in ours(cluster_sql).split(";"):
            if statement.strip():
                admin.execute(statement)  # type: ignore[call-overload]
    database = names["app"]
    admin_in_db = url_for(postgres.admin_url, *_admin(postgres), database)
    with psycopg.connect(admin_in_db, autocommit=True) as admin:
        admin.execute(ours(database_sql))  # type: ignore[call-overload]
    yield {
        "migrator": url_for(postgres.admin_url, names["app_migrator"],
                            passwords["MIGRATOR_PASSWORD"], database),
        "service": url_for(postgres.admin_url, names["app_service"],
                           passwords["SERVICE_PASSWORD"], database),
        "group": names["app_rw"],
        "admin_in_db": admin_in_db,
    }  # fmt: skip
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')  # type: ignore[call-overload]
        for role in ROLES[::-1]:
            admin.execute(f"DROP ROLE {names[role]}")  # type: ignore[call-overload]


def _admin(postgres: PostgresServer) -> tuple[str, str]:
    parts = urlsplit(postgres.admin_url)
    return parts.username or "", parts.password or ""


def migrate(url: str, grant_role: str) -> subprocess.CompletedProcess[str]:
    """`python -m service migrate`, as the migration Job runs it."""
    env = {**os.environ, "DATABASE_URL": url, "MIGRATION_GRANT_ROLE": grant_role}
    command = [sys.executable, "-m", "service", "migrate", "--timeout", "5"]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_serving_role_serves_but_cannot_change_the_schema(
    documented_roles: dict[str, str],
) -> None:
    migrated = migrate(documented_roles["migrator"], documented_roles["group"])
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    service_url = documented_roles["service"]
    env = {"DATABASE_URL": service_url, "GUNICORN_WORKERS": "1", "LOG_LEVEL": "WARNING"}
    with running_service(env) as service, requests.Session() as http:
        items = f"{service.base_url}/api/v1/items"
        created = http.post(items, json={"name": "least"}, timeout=5)
        item = f"{items}/{created.json()['id']}"
        statuses = [
            created.status_code,
            http.get(item, timeout=5).status_code,
            http.get(items, timeout=5).status_code,
            http.patch(item, json={"description": "privilege"}, timeout=5).status_code,
            http.delete(item, timeout=5).status_code,
            http.get(f"{service.base_url}/readyz", timeout=5).status_code,
        ]
    assert statuses == [201, 200, 200, 200, 204, 200]

    refused = []
    for ddl in ("DROP TABLE items", "ALTER TABLE items ADD COLUMN colour text",
                "TRUNCATE items", "CREATE TABLE mine (id int)",
                "ALTER TABLE items DROP CONSTRAINT uq_items_name",
                "DROP TABLE alembic_version", "DELETE FROM alembic_version",
                "UPDATE alembic_version SET version_num = 'x'"):  # fmt: skip
        with psycopg.connect(service_url, autocommit=True) as conn:
            try:
                conn.execute(ddl)  # type: ignore[call-overload]
            except psycopg.errors.InsufficientPrivilege:
                refused.append(ddl)
    assert len(refused) == 8, refused


def test_a_missing_group_role_fails_migrate_clearly_and_a_later_run_grants(
    documented_roles: dict[str, str],
) -> None:
    """CloudNativePG creates its managed roles once the primary is up, maybe after the
    first migration Job ran: the grants must still arrive (at the Job's retry)."""
    group = documented_roles["group"]
    with psycopg.connect(documented_roles["admin_in_db"], autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {group} RENAME TO {group}_later")  # type: ignore[call-overload]
    failed = migrate(documented_roles["migrator"], group)
    with psycopg.connect(documented_roles["admin_in_db"], autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {group}_later RENAME TO {group}")  # type: ignore[call-overload]
    assert failed.returncode == 2, failed.stdout + failed.stderr
    (line,) = [line for line in failed.stdout.splitlines() if "MIGRATION_GRANT_ROLE" in line]
    assert f"MIGRATION_GRANT_ROLE={group}: no such role" in line
    assert "Traceback" not in failed.stdout + failed.stderr
    with (
        psycopg.connect(documented_roles["service"]) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT count(*) FROM items")

    retried = migrate(documented_roles["migrator"], group)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    with psycopg.connect(documented_roles["service"]) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
