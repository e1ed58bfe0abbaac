"""Connections made stale under the service (a column's type changed, a session killed)
are discarded, and the request runs again on a fresh one where that cannot write twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests
from flask import Flask

from tests.conftest import migrate
from tools.load import LoadLoop, mixed_requests, seed_items
from tools.service_process import running_service

pytestmark = pytest.mark.slow
WORKERS = 2  # one kept connection each (sync workers, DB_POOL_SIZE 1)


def wait_for_requests(load: LoadLoop, count: int, timeout: float = 25.0) -> None:
    """Until `load` has sent `count` requests in all (its own deadline bounds it too)."""
    deadline = time.monotonic() + timeout
    while load.sent() < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_column_type_changed_while_serving_fails_no_request(empty_database: str) -> None:
    """The kept connections have prepared the hot statements (psycopg prepares after five
    runs); widening `name` makes each of them fail with 0A000 "cached plan must not change
    result type". Each connection is discarded on its first failure and the request is
    run again on a fresh one, so no client sees it; before, every request failed with 500
    until the connections were recycled 30 minutes later."""
    migrate(empty_database)
    env = {"DATABASE_URL": empty_database, "GUNICORN_WORKERS": str(WORKERS),
           "LOG_LEVEL": "INFO"}  # fmt: skip
    with running_service(env) as service:
        ids = seed_items(service.port, "stale")
        with LoadLoop(service.port, mixed_requests("stale", ids), threads=4, seconds=60) as load:
            # Counted in requests, not seconds: a busy machine sends fewer per second, and
            # a fixed wait then left too little load after the change to show anything.
            wait_for_requests(load, 200)  # every hot statement prepared on both connections
            with psycopg.connect(empty_database, autocommit=True) as admin:
                admin.execute("ALTER TABLE items ALTER COLUMN name TYPE varchar(300)")
            altered = time.monotonic()
            wait_for_requests(load, load.sent() + 150)
        report = load.report
        log = service.output()

    after = report.where(lambda r: r.started > altered)
    assert len(after) > 100, "too little load after the change to show anything"
    failed = [r for r in report.results if r.status not in (200, 201)]
    assert not any(r.status == 500 for r in report.results), report.statuses
    assert len(failed) <= WORKERS, report.statuses  # at most one per kept connection
    assert all(r.status in (200, 201) for r in after[len(failed) :]), report.statuses
    retried = log.count("database connection stale")
    assert retried >= 1, "no connection went stale: did the statements get prepared?"
    print(
        f"column type changed under load: {len(report.results)} requests, "
        f"{len(after)} after the change, {len(failed)} failed, {retried} statements retried "
        "on a fresh connection"
    )


def test_a_read_whose_session_is_killed_runs_again_and_succeeds(empty_database: str) -> None:
    """pg_terminate_backend (57P01, as in a failover or an admin's kill) while a GET waits:
    a read is safe to repeat, so it runs again on a new connection and answers 200."""
    response, after = answer_when_session_killed(empty_database, "GET")
    assert response.status_code == 200, response.text
    assert after == [200] * 5


def test_a_write_whose_session_is_killed_is_a_503_not_repeated(empty_database: str) -> None:
    """A write cut off mid-statement may have committed (in autocommit the statement is its
    own commit): it is answered 503 commit_unconfirmed, and not run twice."""
    response, after = answer_when_session_killed(empty_database, "DELETE")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "commit_unconfirmed"
    assert after == [200] * 5  # not deleted, and the next requests get a fresh connection


def answer_when_session_killed(url: str, method: str) -> tuple[requests.Response, list[int]]:
    """`method` on an item while a lock holds its statement, whose session is then
    killed; the lock is released just after. Also the status of five GETs after."""
    migrate(url)
    env = {"DATABASE_URL": url, "GUNICORN_WORKERS": "1", "LOG_LEVEL": "WARNING"}
    with running_service(env) as service, requests.Session() as http:
        item = f"{service.base_url}/api/v1/items/"
        item += str(http.post(item[:-1], json={"name": "killed"}, timeout=5).json()["id"])
        with (
            psycopg.connect(url, autocommit=True) as admin,
            psycopg.connect(url) as blocker,
        ):
            blocker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as pool:
                stuck = pool.submit(http.request, method, item, timeout=10)
                assert kill_backend_waiting_on_a_lock(admin)
                blocker.rollback()
                response = stuck.result()
        after = [http.get(item, timeout=5).status_code for _ in range(5)]
    return response, after


def test_prepared_statements_can_be_turned_off(make_app: Any) -> None:
    """DB_PREPARED_STATEMENTS=false: for PgBouncer in transaction mode (a session may land
    on another server, where its prepared statements do not exist: 26000)."""
    for enabled, threshold in ((True, 5), (False, None)):
        app: Flask = make_app(db_prepared_statements=enabled)
        with app.test_request_context():
            connection = app.extensions["db"].connection()
            assert connection.prepare_threshold == threshold


def kill_backend_waiting_on_a_lock(admin: psycopg.Connection[Any]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'service' AND wait_event_type = 'Lock'"
        ).fetchone()
        if row is not None:
            return bool(row[0])
        time.sleep(0.05)
    return False
