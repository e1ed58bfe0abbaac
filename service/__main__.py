"""The one entrypoint: `python -m service serve | migrate | wait-for-schema | dev | sweep-tags`.

The image runs this; the command alone decides whether a container serves traffic,
migrates the database or waits for the schema. Configuration errors end the process
with one JSON log line and exit code 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

from service.config import (
    ConfigError,
    Settings,
    database_url_from_env,
    migration_settings_from_env,
)
from service.telemetry.logs import configure_logging

log = logging.getLogger("service")

USAGE_EXIT = 2
DEFAULT_DB_WAIT_SECONDS = 60


def serve(args: argparse.Namespace) -> int:
    """Start gunicorn in place of this process, so it is PID 1 and receives SIGTERM."""
    # Fail here with one clear line, not inside gunicorn.
    Settings.from_env().refuse_anonymous_api()
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:service.runtime.gunicorn_conf"]
    os.execv(sys.executable, argv)  # noqa: S606 - fixed argv, no shell


def migrate(args: argparse.Namespace) -> int:
    """Apply the pending migrations up to the revision this code needs (with `--contract`,
    also the contract steps after it, all or up to the one named); safe to run concurrently.

    A database already ahead of this code (a rollback to the previous image re-runs its
    migration Job) is left as it is: the schema is expand-first, so old code works on it.
    Contract steps (service/store/schema_revision.py) remove what the previous release
    needed, so they wait for `--contract`, run once that release is gone.
    """
    from alembic import command
    from sqlalchemy import create_engine

    from service.store.direct_connection import READ_WRITE, refuse_a_pooler
    from service.store.migration_locks import MigrationBlockedError, upgrade_with_lock_retries
    from service.store.schema_revision import alembic_config, database_revisions, read_chain

    settings = migration_settings_from_env()  # a bad URL is a config error, not a retry
    url = settings.database_url
    config = alembic_config()
    chain = read_chain(config)
    target = chain.needed
    if args.contract is not None:
        # Up to a named contract step: leaving it set in a deployment is harmless, a later
        # release's own contract steps come after it and still wait.
        target = args.contract or chain.latest
        if target not in chain.revisions:
            steps = ", ".join(chain.revisions[: chain.contract_steps]) or "none"
            raise ConfigError(
                f"--contract {target}: this code has no such revision. Its contract steps: "
                f"{steps}; give one of them, or no revision for all."
            )
        if chain.reached(chain.needed, target):  # an older revision: nothing to contract
            target = chain.needed

    def upgrade() -> None:
        engine = create_engine(url, connect_args={"connect_timeout": 5, **READ_WRITE})
        try:
            with engine.connect() as connection:
                refuse_a_pooler(connection)  # also when there is nothing to migrate
                current = database_revisions(connection)
        finally:
            engine.dispose()
        if len(current) == 1 and current[0] not in chain.revisions:
            log.info("nothing to migrate: schema %s is ahead of this code", current[0])
            return
        # At the target itself, alembic still runs (no revision to apply): its env.py
        # re-grants MIGRATION_GRANT_ROLE on every run, which a Job retried after the
        # serving role appeared (CloudNativePG creates managed roles late) relies on.
        if len(current) == 1 and current[0] != target and chain.reached(current[0], target):
            log.info("nothing to migrate: schema %s is past %s", current[0], target)
            return
        upgrade_with_lock_retries(
            lambda: command.upgrade(config, target), url,
            attempts=settings.migration_lock_attempts,
            lock_timeout_ms=settings.migration_lock_timeout_ms,
        )  # fmt: skip
        log.info("migrations applied: database is at %s", target)
        if target != chain.latest:
            log.info(
                "%d contract step(s) up to %s wait until the previous release is gone: then "
                "run `python -m service migrate --contract` (docs/extending.md)",
                chain.contract_steps, chain.latest,
            )  # fmt: skip

    try:
        _retry_while_unreachable(args.timeout, upgrade)
    except MigrationBlockedError as exc:
        log.error("%s", exc)
        return 1
    return 0


def wait_for_schema(args: argparse.Namespace) -> int:
    """Exit 0 once the database schema is at or ahead of this code's revision."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from service.store.schema_revision import check_schema

    engine = create_engine(database_url_from_env(), pool_pre_ping=True,
                           connect_args={"connect_timeout": 3})  # fmt: skip
    deadline = time.monotonic() + args.timeout
    last_reason = ""
    while True:
        try:
            with engine.connect() as connection:
                state = check_schema(connection)
            if state.ready:
                log.info("schema ready: %s", state.reason)
                return 0
            reason = state.reason
        except SQLAlchemyError as exc:
            reason = f"database unreachable ({type(exc).__name__})"
        if reason != last_reason:
            log.info("waiting for the schema: %s", reason)
            last_reason = reason
        if time.monotonic() >= deadline:
            log.error(
                "gave up after %ss: %s. Check the migration Job's logs: kubectl logs "
                "--namespace <namespace> --selector app.kubernetes.io/component=migration,"
                "app.kubernetes.io/instance=<release> --tail=100",
                args.timeout, reason,
            )  # fmt: skip
            return 1
        time.sleep(1)


def dev(args: argparse.Namespace) -> int:
    """The Flask development server with the reloader, for the hot-reload loop."""
    settings = Settings.from_env()
    if settings.app_env != "dev":
        raise ConfigError(
            f"`dev` runs only with APP_ENV=dev (it is {settings.app_env}): use `serve`."
        )
    if importlib.util.find_spec("werkzeug.debug") is None:
        raise ConfigError(
            "`dev` needs the development image: the production image leaves out Werkzeug's "
            "debugger on purpose. Build the `dev` target (`make image-dev`) or use `serve`."
        )
    from service import create_app

    app = create_app(settings)
    if os.environ.get("WERKZEUG_RUN_MAIN") == "true":  # the reloader's child: the one serving
        from service.store.database import get_db

        get_db(app).tag_sweeper.start()
    app.run(host="0.0.0.0", port=settings.port, debug=settings.debug, use_reloader=True)  # noqa: S104
    return 0


def sweep_tags(args: argparse.Namespace) -> int:
    """Finish the tags deleted with 202 (their links and names, in batches), then exit: what
    each worker's sweeper thread does, for an operator or a CronJob. Exit 0 when none are
    left, 3 if another sweeper holds the lock (it is doing the work)."""
    from service.store.tag_sweeper import Sweeper

    settings = Settings.from_env()
    finished = Sweeper(settings).round()
    if finished is None:
        log.info("another sweeper holds the lock: it is finishing the deleted tags")
        return 3
    log.info("deleted tags finished: %d", finished)
    return 0


def _retry_while_unreachable(timeout: float, action: Callable[[], object]) -> None:
    """Run `action`, retrying while the database cannot be reached (it may still be starting)."""
    from sqlalchemy.exc import OperationalError

    from service.store.migration_locks import lock_timed_out

    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except OperationalError as exc:
            if lock_timed_out(exc):
                raise  # reachable, but busy: upgrade_with_lock_retries decides
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"cannot reach the database after {timeout:g}s: "
                    f"{str(exc.orig).strip().splitlines()[0]}. Check DATABASE_URL and that "
                    "the server is up."
                ) from None
            log.warning("database not reachable yet, retrying: %s", type(exc.orig).__name__)
            time.sleep(2)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": serve,
    "migrate": migrate,
    "wait-for-schema": wait_for_schema,
    "dev": dev,
    "sweep-tags": sweep_tags,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="serve HTTP with gunicorn (the default)")
    m = sub.add_parser("migrate", help="apply database migrations and exit")
    m.add_argument("--timeout", type=float, default=DEFAULT_DB_WAIT_SECONDS,
                   help="seconds to keep retrying while the database is unreachable")  # fmt: skip
    m.add_argument("--contract", nargs="?", const="", metavar="REVISION",
                   help="also the contract steps (up to REVISION): once the previous "
                   "release is gone")  # fmt: skip
    w = sub.add_parser("wait-for-schema", help="wait until the schema is at or ahead of the code")
    w.add_argument("--timeout", type=float, default=300, help="seconds before giving up")
    sub.add_parser("dev", help="Flask development server with reloader (APP_ENV=dev only)")
    sub.add_parser("sweep-tags", help="finish the tags deleted with 202, then exit")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = args.command or "serve"
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper() if _level_ok() else "INFO")
    try:
        return COMMANDS[command](args)
    except ConfigError as exc:
        log.critical("%s", exc)
        return USAGE_EXIT


def _level_ok() -> bool:
    return os.environ.get("LOG_LEVEL", "INFO").upper() in {"DEBUG", "INFO", "WARNING", "ERROR"}


if __name__ == "__main__":
    sys.exit(main())
