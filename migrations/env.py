"""Alembic environment: same DATABASE_URL as the app, one migrator at a time.

A session-level advisory lock serialises concurrent `alembic upgrade head` runs (two
release Jobs, a Job and a developer): the second waits, then finds nothing to do.
Each revision runs in its own transaction, so a failing revision leaves the database
at the previous one with no partial changes (PostgreSQL DDL is transactional).

Each revision also runs with a `lock_timeout` (MIGRATION_LOCK_TIMEOUT_MS): a DDL
statement waiting for its lock behind a long transaction holds up every query on that
table queued behind it, the API's included, so it gives up after a few seconds instead
(`python -m service migrate` retries it with backoff).
"""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import create_engine, pool, text

from service.config import database_url_from_env, migration_settings_from_env
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
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
