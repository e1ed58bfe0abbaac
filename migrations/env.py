"""Alembic environment: same DATABASE_URL as the app, one migrator at a time.

A session-level advisory lock serialises concurrent `alembic upgrade head` runs (two
release Jobs, a Job and a developer): the second waits, then finds nothing to do.
Each revision runs in its own transaction, so a failing revision leaves the database
at the previous one with no partial changes (PostgreSQL DDL is transactional).

Each revision also runs with a `lock_timeout` (MIGRATION_LOCK_TIMEOUT_MS): a DDL
statement waiting for its lock behind a long transaction holds up every query on that
table queued behind it, the API's included, so it gives up after a few seconds instead
(`python -m service migrate` retries it with backoff).

After the revisions, every run grants the serving group role (MIGRATION_GRANT_ROLE) rows
only: SELECT, INSERT, UPDATE, DELETE on the tables, SELECT on alembic_version, and the
same by default on every table a later revision creates. The grants converge on each run,
so a role created after the first migration (CloudNativePG reconciles its managed roles
once the primary is up) gets them at the next Job retry or release.
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from service.config import (
    ConfigError,
    database_url_from_env,
    migration_grant_role_from_env,
    migration_settings_from_env,
)
from service.store.direct_connection import READ_WRITE, refuse_a_pooler
from service.store.models import Base
from service.telemetry.logs import configure_logging

# Any constant that no other code uses; "alembic" in ASCII.
MIGRATION_LOCK_KEY = 0x616C656D626963

config = context.config
log = logging.getLogger("alembic.env")
if not logging.getLogger().handlers:
    configure_logging("INFO")  # `alembic` on the command line; `python -m service` already did


def run_migrations_offline() -> None:
    """Emit SQL for review (`alembic upgrade head --sql`) without connecting."""
    context.configure(
        url=database_url_from_env(), target_metadata=Base.metadata, literal_binds=True,
        transaction_per_migration=True,
    )  # fmt: skip
    with context.begin_transaction():
        context.run_migrations()
    if role := migration_grant_role_from_env():
        with context.begin_transaction():
            for statement in grant_statements(role):
                context.execute(statement)


def run_migrations_online() -> None:
    # No statement timeout here: a migration may legitimately take minutes; the Job's
    # activeDeadlineSeconds bounds it instead. Waiting for a lock is what must be short.
    # Straight to the primary, never through a pooler (service/store/direct_connection.py).
    settings = migration_settings_from_env()
    engine = create_engine(
        settings.database_url, poolclass=pool.NullPool,
        connect_args={"connect_timeout": 5, "application_name": "migrate", **READ_WRITE},
    )  # fmt: skip
    with engine.connect() as connection:
        refuse_a_pooler(connection)
        # The role may carry the service's timeout as a default (one role serving and
        # migrating, as in dev: service/store/session_settings.py); not for migrations.
        connection.execute(text("SET statement_timeout = 0"))
        log.info("waiting for the migration lock")
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        # Set after the advisory lock, whose wait (another migrator) may be long and harmless.
        connection.execute(text(f"SET lock_timeout = {settings.migration_lock_timeout_ms}"))
        connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                transaction_per_migration=True,
                compare_type=True,
                compare_server_default=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
            if settings.migration_grant_role:
                grant_rows(connection, settings.migration_grant_role)
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


def grant_statements(role: str) -> list[str]:
    """Rows only, on what exists and on what later revisions create (as this role)."""
    rows = "SELECT, INSERT, UPDATE, DELETE"
    return [
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'GRANT {rows} ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
        # The serving pods read the revision (readiness) and never write it.
        f'REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM "{role}"',
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {rows} ON TABLES TO "{role}"',
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "{role}"',
    ]


def grant_rows(connection: Connection, role: str) -> None:
    """MIGRATION_GRANT_ROLE's grants, in one transaction; a missing role is a clear error."""
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"),
                                {"role": role}).first()  # fmt: skip
    connection.commit()
    if exists is None:
        raise ConfigError(
            f"MIGRATION_GRANT_ROLE={role}: no such role, so the serving role could not read "
            "or write rows. Create it first (CloudNativePG: spec.managed.roles of the Cluster, "
            'gitops/database/; elsewhere docs/reliability.md, "Database roles"); the '
            "revisions are applied, and the next `migrate` grants."
        )
    for statement in grant_statements(role):
        connection.execute(text(statement))
    connection.commit()
    log.info("granted %s rows only (SELECT, INSERT, UPDATE, DELETE)", role)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
