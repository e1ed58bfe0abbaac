"""The service as production runs it (gunicorn, 2 workers, prod settings), for the tests
that fail its database under it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tools.load import seed_items
from tools.localpg import APP_DB, APP_USER, LocalPostgres
from tools.service_process import ServiceProcess, running_service

# Short, so the tests are (the deadline may be up to the statement timeout + 2 s).
STATEMENT_TIMEOUT_MS, DEADLINE_MS = 1000, 3000
DEADLINE = DEADLINE_MS / 1000
WORKERS = 2
EXPIRED = "waited on the database past DB_DEADLINE_MS"  # the watchdog's log line


def url_through(port: int, server: LocalPostgres) -> str:
    """The app role's URL for `server`'s database, reached on `port` (an address, a pooler)."""
    return f"postgresql://{APP_USER}:{server.password}@127.0.0.1:{port}/{APP_DB}"


@contextlib.contextmanager
def serving(url: str | None, **extra: str) -> Iterator[tuple[ServiceProcess, list[int]]]:
    """The service on `url` (None: by its parts in `extra`), with 20 items to read; `extra`
    settings override."""
    env = {
        **({"DATABASE_URL": url} if url else {}), "APP_ENV": "prod", "AUTH_DISABLED": "true",
        "GUNICORN_WORKERS": str(WORKERS), "LOG_LEVEL": "WARNING",
        "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS), "DB_DEADLINE_MS": str(DEADLINE_MS),
        **extra,
    }  # fmt: skip
    with running_service(env) as service:
        yield service, seed_items(service.port, "seed", count=20)
