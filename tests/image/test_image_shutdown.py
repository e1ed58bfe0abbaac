"""SIGTERM with requests in flight: every started request completes, then the container
exits 0 within the graceful timeout (what a rolling update does to a pod).

To hold requests in flight for as long as the test likes, a second connection locks the
items table: each request then waits inside PostgreSQL, where pg_stat_activity shows
that the workers are busy with them. The lock is released only after gunicorn has
logged that it received SIGTERM; as many requests are sent as the workers have threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from tests.conftest import PostgresServer
from tests.image.conftest import BuiltImages
from tests.image.imagelib import check, container, run_once

pytestmark = pytest.mark.docker

GRACEFUL_TIMEOUT_S = 15


@pytest.fixture
def migrated_database(
    docker: str, images: BuiltImages, postgres: PostgresServer
) -> Iterator[tuple[str, str]]:
    name = postgres.create_database()
    url = postgres.database_url(name)
    result = run_once(docker, images.runtime, "migrate", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stdout + result.stderr
    yield name, url
    postgres.drop_database(name)


def waiting_on_lock(admin: psycopg.Connection, database: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        (database,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def settled(count: Callable[[], int], *, at_least: int, quiet_s: float = 1.0) -> bool:
    """True once count() is at least `at_least` and unchanged for `quiet_s` seconds."""
    first = count()
    if first < at_least:
        return False
    time.sleep(quiet_s)
    return count() == first


def wait_for(
    what: str, condition: Callable[[], bool], *, timeout: float, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{logs()}")


@pytest.mark.parametrize(
    ("workers", "threads"),
    [pytest.param(2, 1, id="sync-workers"), pytest.param(2, 4, id="threaded-workers")],
)
def test_sigterm_drains_in_flight_requests_and_exits_0(
    docker: str,
    images: BuiltImages,
    postgres: PostgresServer,
    migrated_database: tuple[str, str],
    workers: int,
    threads: int,
) -> None:
    name, url = migrated_database
    capacity = workers * threads
    env = {
        "DATABASE_URL": url,
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT_S),
        "DB_POOL_SIZE": str(threads),
        # The held requests wait on a lock; they must not be cancelled while held (nor
        # ended by the deadline, which must leave gunicorn's timeout room: config.py).
        "DB_STATEMENT_TIMEOUT_MS": "60000",
        "DB_DEADLINE_MS": "61000",
        "GUNICORN_TIMEOUT": "90",
    }
    # The superuser, in the test's database: it may lock the table and see every backend.
    admin_url = urlunsplit(urlsplit(postgres.admin_url)._replace(path=f"/{name}"))
    with container(docker, images.runtime, env=env) as server:
        server.wait_ready()
        with (
            psycopg.connect(admin_url) as locker,
            psycopg.connect(admin_url, autocommit=True) as admin,
        ):
            locker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(max_workers=capacity) as pool:
                futures = [
                    pool.submit(requests.get, f"{server.url}/api/v1/items", timeout=60)
                    for _ in range(capacity)
                ]
                # gthread workers may accept more connections than they have threads and
                # queue the rest, so wait until every worker is busy and no more arrive.
                wait_for(
                    "the requests to be waiting inside PostgreSQL",
                    lambda: settled(lambda: waiting_on_lock(admin, name), at_least=workers),
                    timeout=20,
                    logs=server.logs,
                )
                check([docker, "kill", "--signal", "TERM", server.id])
                sent_at = time.monotonic()
                wait_for(
                    "gunicorn to log SIGTERM",
                    lambda: "Handling signal: term" in server.logs(),
                    timeout=10,
                    logs=server.logs,
                )
                # The arbiter logs before it signals the workers: give them time to be
                # told, so the held requests finish during the drain, not before it.
                time.sleep(1)
                assert server.state()["Running"], "the container exited with requests in flight"
                locker.commit()  # releases the lock: the held requests now finish
                responses = [future.result() for future in futures]
            exit_code = server.wait_exit(timeout=GRACEFUL_TIMEOUT_S + 10)
            stopped_after = time.monotonic() - sent_at
        logs = server.logs()

    assert [r.status_code for r in responses] == [200] * capacity, logs
    assert all("items" in r.json() for r in responses)
    assert exit_code == 0, logs
    assert stopped_after < GRACEFUL_TIMEOUT_S, logs
