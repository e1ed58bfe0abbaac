"""Through a transaction-pooling PgBouncer (what CloudNativePG's Pooler runs): the
statement timeout and UTC still hold, and migrations refuse to go through it.

The PgBouncer ignores the `options` startup parameter, as CloudNativePG's Pooler does by
default: settings sent that way (how they were sent before) would be silently lost."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from service.store.tag_sweeper import sweep
from tests.reliability.serving import DEADLINE, EXPIRED, serving, url_through
from tools.localpg import APP_DB, APP_USER, SUPERUSER, LocalPostgres
from tools.localpg_replication import copy_data_dir
from tools.localpgbouncer import LocalPgBouncer, pgbouncer
from tools.service_process import ROOT

pytestmark = pytest.mark.slow

TIMEOUT_MS = 1000  # below the tests' deadline, so the statement timeout is what answers


@pytest.fixture
def server_not_in_utc(
    migrated_template: LocalPostgres, reachable_tmp: Path
) -> Iterator[LocalPostgres]:
    """A server whose own TimeZone is not UTC: sessions must set it themselves."""
    server = copy_data_dir(migrated_template, reachable_tmp, "data")
    server.settings = {"timezone": "Asia/Kolkata"}
    server.start()
    try:
        yield server
    finally:
        server.stop(mode="immediate")


SERVING_ROLE = "app_service"  # CloudNativePG's serving role: rows only, owns nothing


def as_serving_role(server: LocalPostgres) -> tuple[str, str]:
    """A role like values/cloudnative-pg.yaml's app_service: login, DML only, no CREATEROLE,
    not the database's owner. It may still set its own defaults in the database."""
    with psycopg.connect(server.url(user=SUPERUSER), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {SERVING_ROLE} LOGIN PASSWORD '{server.password}'")
        admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                      f"TO {SERVING_ROLE}")  # fmt: skip
        admin.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVING_ROLE}")
    return SERVING_ROLE, server.password


@pytest.mark.parametrize(
    "form", ["owner by DATABASE_URL", "serving role by DATABASE_HOST (CloudNativePG's Pooler)"]
)
def test_statement_timeout_and_utc_hold_on_every_server_connection_of_the_pooler(
    server_not_in_utc: LocalPostgres, pgbouncer_binary: str, reachable_tmp: Path,
    monkeypatch: pytest.MonkeyPatch, form: str,
) -> None:  # fmt: skip
    server = server_not_in_utc
    by_parts = form.startswith("serving role")
    user, password = as_serving_role(server) if by_parts else (APP_USER, server.password)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the suite's, if set
    with pgbouncer(pgbouncer_binary, reachable_tmp / "pgbouncer", server.port, APP_DB, user,
                   password) as bouncer:  # fmt: skip
        password_file = reachable_tmp / "password"
        password_file.write_text(password)
        parts = {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(bouncer.port),
                 "DATABASE_NAME": APP_DB, "DATABASE_USER": user,
                 "DATABASE_PASSWORD_FILE": str(password_file)}  # fmt: skip
        url, connection = (None, parts) if by_parts else (url_through(bouncer.port, server), {})
        check_through(server, bouncer, user, password, url, connection)


def check_through(
    server: LocalPostgres, bouncer: LocalPgBouncer, user: str, password: str,
    url: str | None, connection: dict[str, str],
) -> None:  # fmt: skip
    with (
        serving(url, DB_PREPARED_STATEMENTS="false", DB_STATEMENT_TIMEOUT_MS=str(TIMEOUT_MS),
                DB_ALLOW_PLAINTEXT="true", **connection) as (service, ids),
        requests.Session() as http,
    ):  # fmt: skip
        # Timestamps in UTC (the server's own zone is +05:30), on both workers' connections.
        items = [http.get(f"{service.base_url}/api/v1/items/{i}", timeout=5).json() for i in ids]
        # Clients of the pooler that set nothing, each holding a transaction open, so each
        # has a server connection of its own, opened by the pooler: they run with the
        # serving role's defaults, which the service made its statement timeout.
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(psycopg.connect(bouncer.url(user, password, APP_DB)))
                       for _ in range(4)]  # fmt: skip
            seen = [c.execute("SELECT setting, pg_backend_pid() FROM pg_settings "
                              "WHERE name = 'statement_timeout'").fetchone()
                    for c in clients]  # fmt: skip
        # A statement stuck behind a lock, on whatever server connection the pooler
        # gives it, is cancelled by the statement timeout (not the deadline): 503.
        with psycopg.connect(server.url()) as locker:
            locker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(4) as pool:
                stuck = list(pool.map(
                    lambda _: timed(http.get, f"{service.base_url}/api/v1/items", timeout=15),
                    range(4),
                ))  # fmt: skip
            locker.rollback()
        log = service.output()

    assert all(item["created_at"].endswith("+00:00") for item in items), items[:2]
    assert len({pid for _, pid in seen}) == 4, seen  # four server connections
    assert all(setting == str(TIMEOUT_MS) for setting, _ in seen), seen
    for response, seconds in stuck:
        assert response.status_code == 503 and seconds < DEADLINE, (response.text, seconds)
        assert response.json()["error"]["code"] == "database_unavailable"
    assert "canceling statement due to statement timeout" in log
    assert EXPIRED not in log


def test_migrations_refuse_a_connection_pooler(
    lone_server: LocalPostgres, pgbouncer_binary: str, reachable_tmp: Path
) -> None:
    """They hold a session-level advisory lock, which transaction pooling breaks."""
    server = lone_server
    with pgbouncer(pgbouncer_binary, reachable_tmp / "pgbouncer", server.port, APP_DB, APP_USER,
                   server.password) as bouncer:  # fmt: skip
        pooled = migrate(bouncer.url(APP_USER, server.password, APP_DB))
    assert pooled.returncode == 2, pooled.stdout
    assert "migrations must connect directly to the primary" in pooled.stdout
    assert "<cluster>-rw" in pooled.stdout and "Traceback" not in pooled.stdout
    direct = migrate(server.url())
    assert direct.returncode == 0, direct.stdout


def migrate(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "dev"}
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--timeout", "10"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def timed(call, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


class _Interleaved:
    """The sweeper's connection to the pooler; after its first statement, `other` (another
    client of the pooler) opens a transaction, taking the server session the pooler had
    just used for it, so the sweeper's next statements run on another one."""

    def __init__(self, connection: psycopg.Connection[Any], other: psycopg.Connection[Any]):
        self.connection, self.other, self.statements = connection, other, 0

    def transaction(self) -> Any:
        return self.connection.transaction()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        with self.connection.cursor() as cursor:
            yield self._Cursor(cursor, self)

    class _Cursor:
        def __init__(self, cursor: psycopg.Cursor[Any], owner: _Interleaved) -> None:
            self.cursor, self.owner = cursor, owner

        def execute(self, *args: Any, **kwargs: Any) -> psycopg.Cursor[Any]:
            result = self.cursor.execute(*args, **kwargs)
            self.owner.statements += 1
            if self.owner.statements == 1:
                self.owner.other.execute("SELECT 1")  # BEGIN: it keeps its session
            return result


def test_the_tag_sweeper_leaves_no_lock_behind_through_a_transaction_pooler(
    lone_server: LocalPostgres, pgbouncer_binary: str, reachable_tmp: Path
) -> None:
    """The sweeper's lock is its transactions' own: a session-level lock taken through the
    pooler on one server session and released on another would stay held by a session
    the pooler lends to anyone, and no sweeper would run again until it closed."""
    server = lone_server
    with pgbouncer(pgbouncer_binary, reachable_tmp / "pgbouncer", server.port, APP_DB, APP_USER,
                   server.password) as bouncer:  # fmt: skip
        url = bouncer.url(APP_USER, server.password, APP_DB)
        with (
            psycopg.connect(url, autocommit=True, prepare_threshold=None) as sweeping,
            psycopg.connect(url, prepare_threshold=None) as other,
        ):
            interleaved = _Interleaved(sweeping, other)
            assert sweep(interleaved, batch=10) == 0  # type: ignore[arg-type]
            assert interleaved.statements >= 2
            other.rollback()
            # While the pooler's server sessions live: none holds the lock.
            with psycopg.connect(server.url(user=SUPERUSER), autocommit=True) as admin:
                held = admin.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                ).fetchone()
            assert held == (0,), "a server session of the pooler kept the sweeper's lock"
