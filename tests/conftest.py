"""Shared fixtures: a real PostgreSQL for the whole run, a migrated database, an app whose
every test runs in a transaction that is rolled back (isolation without re-creating
the schema), and a client; and the helpers every API test uses (create a row, check an
error response).

The server is TEST_DATABASE_URL's when set (a role allowed to CREATE DATABASE; the suite
only touches databases it creates), else a throwaway one started here.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from alembic import command
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.config import AuthSettings, Settings, normalise_database_url
from service.store.database import get_db
from service.store.schema_revision import alembic_config
from tools.devtoken import ALL_SCOPES, SigningKey, jwks
from tools.localpg import throwaway_postgres


@dataclass(frozen=True)
class PostgresServer:
    """Where the test server is; `database_url(name)` points at one of its databases."""

    admin_url: str  # may CREATE/DROP DATABASE
    app_url_template: str  # the URL the app uses, with {database} for the name
    local: object | None = None  # the LocalPostgres when we started it (outage tests)

    def database_url(self, name: str) -> str:
        return self.app_url_template.format(database=name)

    def create_database(self) -> str:
        name = f"test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            owner = urlsplit(self.database_url(name)).username
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown when run with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs `-n auto --dist loadfile`: the tests/scheduling.py refinement
    keeps the image directories on one worker too. Any other --dist is xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.scheduling import FileAndImageScheduling

    return FileAndImageScheduling(config, log)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        template = _with_database(url, "{database}").replace("%7Bdatabase%7D", "{database}")
        yield PostgresServer(admin_url=url, app_url_template=template)
        return
    with throwaway_postgres() as server:
        template = server.url(database="{database}")
        yield PostgresServer(admin_url=server.admin_url, app_url_template=template, local=server)


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    name = postgres.create_database()
    yield postgres.database_url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """A database migrated to head, shared by the run (tests roll back their changes)."""
    name = postgres.create_database()
    url = postgres.database_url(name)
    migrate(url)
    yield url
    postgres.drop_database(name)


def migrate(url: str, revision: str = "head") -> None:
    os.environ["DATABASE_URL"] = url
    try:
        command.upgrade(alembic_config(), revision)
    finally:
        del os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(app_env="dev", database_url=normalise_database_url(database_url))


@pytest.fixture
def connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection in a transaction that is rolled back after the test."""
    with psycopg.connect(database_url) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def app(settings: Settings, connection: psycopg.Connection[Any]) -> Flask:
    app = create_app(settings)
    get_db(app).bind_to(connection)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_app(settings: Settings):  # type: ignore[no-untyped-def]
    """Build an app with some settings changed (its own engine, no rollback)."""

    def build(**changes: object) -> Flask:
        return create_app(replace(settings, **changes))  # type: ignore[arg-type]

    return build


def create_row(client: FlaskClient, url: str, **body: Any) -> dict[str, Any]:
    """POST `body` to a collection; the created row (the test fails unless 201)."""
    response = client.post(url, json=body)
    assert response.status_code == 201, response.json
    row: dict[str, Any] = response.json  # type: ignore[assignment]
    return row


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    """The response is our JSON error with this status and code (naming `field`, if given)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.json["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in [d["field"] for d in error["details"]], error["details"]


# Access control (service/auth/): a key of the run's own, published to the app through
# AUTH_JWKS_FILE as the chart mounts auth.jwks; tests/auth/ also run a real HTTP issuer.
TEST_ISSUER = "https://issuer.test.invalid"
TEST_AUDIENCE = "items-api"


@pytest.fixture(scope="session")
def auth_key() -> SigningKey:
    return SigningKey.generate("test-key")


@pytest.fixture(scope="session")
def auth_settings(auth_key: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> AuthSettings:
    path = tmp_path_factory.mktemp("auth") / "jwks.json"
    path.write_text(json.dumps(jwks(auth_key)))
    return AuthSettings(issuer=TEST_ISSUER, audience=TEST_AUDIENCE, jwks_file=str(path))


@pytest.fixture
def bearer(auth_key: SigningKey) -> Callable[..., dict[str, str]]:
    """Authorization headers for a token from the test key: bearer(scope="items:read")."""

    def headers(scope: str = ALL_SCOPES, **claims: Any) -> dict[str, str]:
        token = auth_key.mint(issuer=TEST_ISSUER, audience=TEST_AUDIENCE, scope=scope, **claims)
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest.fixture
def protected_app(
    settings: Settings, auth_settings: AuthSettings, connection: psycopg.Connection[Any]
) -> Flask:
    """The app as deployed: /api needs a token (tests/conftest.py's `app` is dev, anonymous)."""
    app = create_app(replace(settings, auth=auth_settings))
    get_db(app).bind_to(connection)
    return app


ADMIN_SCOPES = f"{ALL_SCOPES} items:admin"


@pytest.fixture
def callers(bearer: Callable[..., dict[str, str]]) -> dict[str, dict[str, str]]:
    """Authorization headers of two owners, `alice` and `bob`, and of an admin (a token
    with items:admin, whose own owner is `root`), for `protected_app`."""
    return {
        "alice": bearer(subject="alice"),
        "bob": bearer(subject="bob"),
        "admin": bearer(subject="root", scope=ADMIN_SCOPES),
    }


# Items whose `tag_names` differ from the names of their links, sorted (issue 26).
_TAG_NAMES_MISMATCHED = """
SELECT i.id, i.tag_names, coalesce(array_agg(t.name ORDER BY t.name)
                                   FILTER (WHERE t.id IS NOT NULL), '{}')
FROM items AS i LEFT JOIN item_tags AS it ON it.item_id = i.id
LEFT JOIN tags AS t ON t.id = it.tag_id
GROUP BY i.id
HAVING i.tag_names <> coalesce(array_agg(t.name ORDER BY t.name)
                               FILTER (WHERE t.id IS NOT NULL), '{}')
"""


def tag_names_mismatched(conn: psycopg.Connection[Any]) -> list[Any]:
    """(id, tag_names, the names of its links) of each item where the two differ."""
    return conn.execute(_TAG_NAMES_MISMATCHED).fetchall()
