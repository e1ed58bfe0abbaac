"""A write PostgreSQL committed locally but no synchronous standby confirmed is never
acknowledged: 503 `commit_unconfirmed`, logged with its request id, counted.

The standby is stopped, so the commit waits for it; then the wait is ended the two ways
PostgreSQL ends it: a cancel (it returns *success*, with only a WARNING, which psycopg
hands to a notice handler) or the session terminated (the WARNING, then the connection
lost). A write of one statement (autocommit: the statement is its commit) and one of
several in an explicit transaction (the COMMIT waits)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from tools.localpg import APP_DB, APP_USER
from tools.localpg_replication import Replicated
from tools.service_process import running_service

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("ended_by", "tags", "reason"),
    [
        ("pg_cancel_backend", [], "sync_standby"),
        ("pg_cancel_backend", ["blue"], "sync_standby"),
        ("pg_terminate_backend", [], "connection_lost"),
    ],
    ids=["cancelled", "cancelled-at-commit", "terminated"],
)
def test_a_commit_no_standby_confirmed_is_never_acknowledged(
    replicated: Replicated, ended_by: str, tags: list[str], reason: str
) -> None:
    primary, standby = replicated.primary, replicated.standby
    url = f"postgresql://{APP_USER}:{primary.password}@127.0.0.1:{primary.port}/{APP_DB}"
    # One worker, and a deadline far away: here PostgreSQL ends the wait, not the watchdog.
    env = {"DATABASE_URL": url, "GUNICORN_WORKERS": "1", "LOG_LEVEL": "WARNING",
           "DB_DEADLINE_MS": "20000"}  # fmt: skip
    name = f"unconfirmed-{ended_by}-{len(tags)}"
    with running_service(env) as service, requests.Session() as http:
        base = service.base_url
        for tag in tags:
            assert http.post(f"{base}/api/v1/tags", json={"name": tag}, timeout=5).ok
        standby.stop(mode="immediate")
        with ThreadPoolExecutor(1) as pool:
            body = {"name": name, "tags": tags}
            pending = pool.submit(http.post, f"{base}/api/v1/items", json=body, timeout=30)
            with psycopg.connect(primary.admin_url, autocommit=True) as admin:
                pid = backend_waiting_for_the_standby(admin)
                admin.execute(f"SELECT {ended_by}(%s)", (pid,))
            response = pending.result()
        metrics = http.get(f"{base}/metrics", timeout=5).text
    # Once it has stopped: all it wrote is read (a loaded machine's reader thread can lag
    # behind the answer; the fresh-machine check in CI once saw no line yet).
    log = service.output()

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "commit_unconfirmed"
    assert "may or may not have been applied" in error["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 5
    request_id = response.headers["X-Request-ID"]
    lines = [json.loads(line) for line in log.splitlines() if request_id in line]
    assert any(line["level"] == "ERROR" and "commit_unconfirmed" in line["message"]
               for line in lines), lines  # fmt: skip
    assert f'db_commits_unconfirmed_total{{reason="{reason}"}} 1.0' in metrics
    # "May or may not": here it was applied, locally, with no standby to confirm it.
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM items WHERE name = %s", (name,)).fetchone()
    assert row == (1,)


def backend_waiting_for_the_standby(admin: psycopg.Connection[Any]) -> int:
    """The service's backend once its commit waits for synchronous replication."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'service' "
            "AND wait_event = 'SyncRep'"
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.05)
    raise AssertionError("no service backend waited for the standby within 10 s")
