"""`migrate` against a busy database: retry a revision that timed out waiting for a lock,
then fail naming the sessions that hold locks on the schema's tables."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

log = logging.getLogger("service")

MAX_BACKOFF_SECONDS = 30.0

# Granted locks on the database's own tables, oldest transaction first. No query text:
# it may hold values that do not belong in a log.
_HOLDERS = text("""
SELECT a.pid, a.usename, a.application_name, a.state,
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::int AS seconds,
       l.mode, c.relname
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND c.relkind IN ('r', 'p', 'm')
  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  AND a.pid <> pg_backend_pid()
ORDER BY a.xact_start NULLS LAST, a.pid
LIMIT 5
""")


class MigrationBlockedError(Exception):
    """A revision could not take its locks in any attempt; the message says who holds them."""


def lock_timed_out(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and isinstance(
        exc.orig, psycopg.errors.LockNotAvailable
    )


def upgrade_with_lock_retries(
    upgrade: Callable[[], None], url: str, *, attempts: int, lock_timeout_ms: int
) -> None:
    """Run `upgrade`; while a revision times out waiting for a lock, try again after 1, 2,
    4... s (jittered, at most 30 s). A revision that timed out was rolled back whole."""
    for attempt in range(1, attempts + 1):
        try:
            upgrade()
            return
        except OperationalError as exc:
            if not lock_timed_out(exc):
                raise
            statement = (exc.statement or "").strip().splitlines()[0][:120]
            if attempt == attempts:
                raise MigrationBlockedError(
                    f"migration gave up after {attempts} attempts: `{statement}` waited more "
                    f"than MIGRATION_LOCK_TIMEOUT_MS={lock_timeout_ms} for its lock each "
                    f"time. Lock holders: {describe_lock_holders(url)}. End or wait for that "
                    "transaction (SELECT pg_terminate_backend(<pid>) if it is stuck), then "
                    "run the migration again."
                ) from None
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
            log.warning(
                "migration waited more than %d ms for a lock (`%s`; holders: %s); attempt %d "
                "of %d, retrying in %.1f s",
                lock_timeout_ms, statement, describe_lock_holders(url), attempt, attempts, delay,
            )  # fmt: skip
            time.sleep(delay)


def describe_lock_holders(url: str) -> str:
    """Who holds locks on the schema's tables, in one line (or why that is unknown)."""
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            rows = connection.execute(_HOLDERS).all()
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the real error
        return f"unknown ({type(exc).__name__})"
    finally:
        engine.dispose()
    if not rows:
        return "none now (the blocking transaction has ended)"
    return "; ".join(
        f"pid {pid} (user {user}, application {app or '-'!r}, {state or 'state hidden'}"
        f"{f' for {seconds} s' if seconds is not None else ''}) holds {mode} on {table}"
        for pid, user, app, state, seconds, mode, table in rows
    )
