"""The session settings the service relies on, set so that they hold through a pooler.

The service needs `statement_timeout` = DB_STATEMENT_TIMEOUT_MS (every statement bounded,
cheaply) and `TimeZone` = UTC (timestamps as the API writes them, converted in C: 7% of a
page's CPU otherwise, service/store/pool.py). They used to travel in the `options`
startup parameter, which PgBouncer refuses ("unsupported startup parameter"), or, told to
ignore it, drops: the timeout silently gone. A session's own `SET` does not hold either:
in transaction pooling each transaction may run on another server connection, and
PgBouncer carries over only a few reported parameters (TimeZone among them, not
statement_timeout).

What every server session starts with, however it is pooled, is its role's defaults. So:
- each worker makes them its role's defaults in this database once, as it starts
  (`ALTER ROLE CURRENT_USER IN DATABASE ... SET`, which a role may do for itself; a
  no-op when they already are), so every server connection a pooler opens has them;
- each new connection also sets them for its own session (one round trip per connect),
  which covers a direct connection opened before the role's defaults were set, and a
  role that may not change its defaults (the warning then says what to run instead);
- the transaction that sets the defaults sets them for its own session first: the server
  connection it runs on may predate them.
tests/reliability/test_pooler.py checks both through a real PgBouncer.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

UTC = "UTC"
_SET_FOR_SESSION = (
    "SELECT set_config('statement_timeout', %s, false), set_config('TimeZone', %s, false)"
)
_ROLE_DEFAULTS = text("""
SELECT coalesce(s.setconfig, '{}') FROM pg_roles r
LEFT JOIN pg_db_role_setting s ON s.setrole = r.oid
  AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
WHERE r.rolname = current_user
""")
# Workers (and pods) start together; concurrent ALTER ROLE of one role can fail with
# "tuple concurrently updated", so they take turns. Any key no other code uses.
_ALTER_LOCK_KEY = 0x726F6C6564656673  # "roledefs"


def wanted(statement_timeout_ms: int) -> dict[str, str]:
    return {"statement_timeout": str(statement_timeout_ms), "TimeZone": UTC}


def set_for_session(connection: psycopg.Connection[Any], statement_timeout_ms: int) -> None:
    """On a new connection (a pool `connect` listener), in autocommit."""
    autocommit = connection.autocommit
    connection.autocommit = True
    try:
        connection.execute(_SET_FOR_SESSION, (str(statement_timeout_ms), UTC))
    finally:
        connection.autocommit = autocommit


def ensure_role_defaults(connection: Connection, statement_timeout_ms: int) -> None:
    """Make the settings this role's defaults in this database, if they are not already.
    Runs in `connection`'s transaction and commits it; never raises."""
    want = wanted(statement_timeout_ms)
    try:
        # First, for this session: through a transaction pooler this transaction may be
        # the first on a server connection the pooler opened before the role's defaults
        # were set (another worker holding the lock below, or its ALTER not committed), and
        # that connection would keep no timeout for its lifetime. The transaction pins
        # it, and a non-local setting outlives the commit.
        connection.exec_driver_sql(_SET_FOR_SESSION, (str(statement_timeout_ms), UTC))
        if _missing(connection, want):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ALTER_LOCK_KEY})
            if missing := _missing(connection, want):  # another worker may have done it
                database = connection.execute(text("SELECT current_database()")).scalar_one()
                raw = connection.connection.driver_connection
                assert raw is not None
                for name, value in missing.items():
                    statement = sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET {} = {}")
                    connection.exec_driver_sql(
                        statement.format(
                            sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
                        ).as_string(raw)
                    )
                log.info("made %s this role's defaults in database %s (they hold through a "
                         "connection pooler)", _describe(missing), database)  # fmt: skip
        connection.commit()
    except Exception as exc:  # noqa: BLE001 - the service works without; say how to fix it
        connection.rollback()
        log.warning(
            "could not make %s this role's defaults (%s): through a transaction pooler "
            "(PgBouncer) they then do not hold. Have an administrator run, for the "
            "serving role and database: ALTER ROLE <role> IN DATABASE <database> SET "
            "statement_timeout = %d; ALTER ROLE <role> IN DATABASE <database> SET "
            "TimeZone = 'UTC'",
            _describe(want), str(exc).strip().splitlines()[0] if str(exc).strip() else
            type(exc).__name__, statement_timeout_ms,
        )  # fmt: skip


def _missing(connection: Connection, want: dict[str, str]) -> dict[str, str]:
    row = connection.execute(_ROLE_DEFAULTS).scalar_one_or_none() or []
    have = dict(item.split("=", 1) for item in row)
    have = {name.lower(): value for name, value in have.items()}
    return {name: value for name, value in want.items() if have.get(name.lower()) != value}


def _describe(settings: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items())
