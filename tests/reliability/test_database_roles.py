"""Least privilege in the database: the SQL in docs/reliability.md ("Database roles")
makes a migration role that owns the schema and a serving role that only reads and
writes rows. Run as written, then checked from both sides."""

from __future__ import annotations

import re
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
    }  # fmt: skip
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')  # type: ignore[call-overload]
        for role in ROLES[::-1]:
            admin.execute(f"DROP ROLE {names[role]}")  # type: ignore[call-overload]


def _admin(postgres: PostgresServer) -> tuple[str, str]:
    parts = urlsplit(postgres.admin_url)
    return parts.username or "", parts.password or ""


def test_the_serving_role_serves_but_cannot_change_the_schema(
    documented_roles: dict[str, str],
) -> None:
    migrate(documented_roles["migrator"])
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
                "DROP TABLE alembic_version"):  # fmt: skip
        with psycopg.connect(service_url, autocommit=True) as conn:
            try:
                conn.execute(ddl)  # type: ignore[call-overload]
            except psycopg.errors.InsufficientPrivilege:
                refused.append(ddl)
    assert len(refused) == 6, refused
