"""The request's database connection on the real pool (no test transaction around it):
writes are committed when acknowledged; a thread keeps its connection between requests,
and gives it up when the server closed it, when it is old, when a request left it in a
transaction, and when the thread ends."""

from __future__ import annotations

import gc
import logging
import secrets
import socket
import threading
import time
from typing import Any

import psycopg
import psycopg.rows
import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from sqlalchemy import event, make_url
from sqlalchemy.exc import OperationalError

from service.config import Settings, normalise_database_url
from service.store import pool as pool_module
from service.store.database import get_db
from tools.localpg import free_port

ITEMS = "/api/v1/items"


def app_showing_its_backend(make_app: Any) -> Flask:
    """An app (pool of one) with a route that says which server process serves it."""
    app: Flask = make_app(db_pool_size=1)

    @app.get("/backend")
    def backend() -> dict[str, Any]:
        statement = "SELECT pg_backend_pid(), current_setting('TimeZone')"
        pid, zone = get_db(app).cursor().execute(statement).fetchone()
        return {"pid": pid, "timezone": zone}

    return app


def backend_pid(client: FlaskClient) -> int:
    response = client.get("/backend")
    assert response.status_code == 200, response.json
    pid: int = response.json["pid"]
    return pid


def backend_exists(database_url: str, pid: int) -> bool:
    with psycopg.connect(database_url) as other:
        row = other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return row.fetchone() == (1,)


def test_a_thread_keeps_its_connection_between_requests(make_app: Any) -> None:
    app = app_showing_its_backend(make_app)
    client = app.test_client()
    first = client.get("/backend").json
    assert first["timezone"] == "UTC"  # whatever the server's default: set per connection
    assert {backend_pid(client) for _ in range(5)} == {first["pid"]}
    assert get_db(app).engine.pool.checkedout() == 1  # kept, not returned and borrowed again
    # /readyz borrows through SQLAlchemy from the same pool of one, and hands it back.
    assert client.get("/readyz").status_code == 200
    assert client.get(f"{ITEMS}?limit=1").status_code == 200


def test_a_request_that_closes_the_cursor_or_changes_its_rows_spoils_no_later_one(
    make_app: Any,
) -> None:
    app = app_showing_its_backend(make_app)

    @app.get("/careless")
    def careless() -> str:
        with get_db(app).cursor() as cursor:  # closes the thread's cursor on the way out
            cursor.row_factory = psycopg.rows.dict_row
            cursor.execute("SELECT 1")
        return "{}"

    client = app.test_client()
    pid = backend_pid(client)
    assert client.get("/careless").status_code == 200
    assert client.get(f"{ITEMS}?limit=2").status_code == 200  # rows from a fresh cursor
    assert backend_pid(client) == pid  # on the same connection


def test_a_requests_results_come_in_binary_also_on_a_cursor_made_anew(
    make_app: Any, app: Flask
) -> None:
    """service/store/kept_connection.py's binary_cursor: on the kept cursor, on the one made
    after a request closed it, and on the tests' bound cursor (`app`), so tests run what the
    service runs."""
    kept = app_showing_its_backend(make_app)
    for each in (kept, app):

        @each.get("/format")
        def result_format(each: Flask = each) -> dict[str, bool]:
            cursor = get_db(each).cursor()
            binary = cursor.format is psycopg.pq.Format.BINARY
            if request.args.get("close"):
                cursor.close()
            return {"binary": binary}

    client = kept.test_client()
    assert client.get("/format?close=1").json == {"binary": True}
    assert client.get("/format").json == {"binary": True}  # a new cursor
    assert app.test_client().get("/format").json == {"binary": True}


def test_a_connection_the_server_closed_is_replaced_before_a_request_uses_it(
    make_app: Any, database_url: str
) -> None:
    client = app_showing_its_backend(make_app).test_client()
    old = backend_pid(client)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (old,))
    deadline = time.monotonic() + 5
    while backend_exists(database_url, old) and time.monotonic() < deadline:
        time.sleep(0.05)
    new = backend_pid(client)  # not a 503: the dead connection was noticed before use
    assert new != old
    assert client.get(f"{ITEMS}?limit=1").status_code == 200


def test_an_old_connection_is_closed_and_replaced(
    make_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_showing_its_backend(make_app).test_client()
    old = backend_pid(client)
    monkeypatch.setattr(pool_module, "RECYCLE_SECONDS", 0)
    new = backend_pid(client)
    assert new != old
    assert not backend_exists(database_url, old)  # closed, not leaked


def test_a_thread_that_ends_gives_its_connection_back(make_app: Any) -> None:
    """The Flask dev server runs each request on a thread of its own."""
    app = app_showing_its_backend(make_app)
    pool = get_db(app).engine.pool
    statuses: list[int] = []

    def one_request() -> None:
        statuses.append(app.test_client().get("/backend").status_code)

    for _ in range(3):  # with a pool of one, a connection not given back would time out
        thread = threading.Thread(target=one_request)
        thread.start()
        thread.join(timeout=30)
        assert pool.checkedout() == 0
    assert statuses == [200, 200, 200]


def test_a_warmed_up_worker_serves_its_first_request_on_the_connection_it_opened(
    make_app: Any,
) -> None:
    app = app_showing_its_backend(make_app)
    db = get_db(app)
    db.warm_up()  # gunicorn's post_worker_init, before the worker accepts
    pool = db.engine.pool
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # open, waiting in the pool
    opened_since: list[object] = []
    event.listen(pool, "connect", lambda *_: opened_since.append(None))
    assert app.test_client().get("/backend").status_code == 200
    assert opened_since == []  # the request took the warmed-up connection
    assert (pool.checkedin(), pool.checkedout()) == (0, 1)


def test_warming_up_against_a_database_that_is_down_only_logs(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(database_url=f"postgresql://app:s3cret-pw@127.0.0.1:{free_port()}/app")
    with caplog.at_level(logging.WARNING, logger="service.store.database"):
        get_db(app).warm_up()
    [message] = [r.getMessage() for r in caplog.records if r.name == "service.store.database"]
    assert message.startswith("no database connection ahead of requests: connection failed")
    assert "refused" in message and "s3cret-pw" not in message
    assert app.test_client().get("/livez").status_code == 200


def test_a_database_that_does_not_answer_does_not_hold_the_worker_back(make_app: Any) -> None:
    """A black-holed database: the TCP handshake completes (the kernel does it), then
    nothing. The worker must serve /livez, not wait DB_CONNECT_TIMEOUT per address."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:  # never accepts
        port = silent.getsockname()[1]
        app = make_app(database_url=f"postgresql://app@127.0.0.1:{port}/app",
                       db_connect_timeout=60)  # fmt: skip
        get_db(app).warm_up(wait_seconds=0.2)
        [opening] = [t for t in threading.enumerate() if t.name == "db-warm-up"]
        assert opening.is_alive()  # still connecting, and the worker goes on
        assert app.test_client().get("/livez").status_code == 200
    opening.join(timeout=30)  # the listener is gone: the connect fails and is logged
    assert not opening.is_alive()


def test_a_connection_attempt_that_times_out_leaves_no_session_on_the_server(
    empty_database: str,
) -> None:
    """The server authenticates the attempt, then takes 3 s to start the session
    (post_auth_delay, as on a loaded host); psycopg gives up at its 2 s minimum. The
    attempt must be closed then, not when the garbage collector next runs (off here: in a
    worker it runs rarely), or the session, once started, would stay on the server, idle."""
    delayed = make_url(normalise_database_url(empty_database)).update_query_dict(
        {"options": "-c post_auth_delay=3"}
    )
    url = delayed.render_as_string(hide_password=False)
    engine = pool_module.make_engine(
        Settings(app_env="dev", database_url=url, db_connect_timeout=1), pooled=False
    )
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="connection timeout expired"):
            engine.connect()
        time.sleep(max(0.0, started + 3.5 - time.monotonic()))  # the session has started
        while (left := service_sessions(empty_database)) and time.monotonic() < started + 6.5:
            time.sleep(0.1)
    finally:
        if collecting:
            gc.enable()
        engine.dispose()
    assert left == 0, "the timed-out attempt's session is still on the server"


def service_sessions(database_url: str) -> int:
    """The service's sessions on `database_url`'s database."""
    with psycopg.connect(database_url) as other:
        row = other.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'service'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_acknowledged_writes_are_committed_on_the_pooled_path(
    make_app: Any, database_url: str
) -> None:
    """Autocommit is what commits a write now; /readyz borrows the same pooled connection
    in a transaction in between, and must hand it back in autocommit."""
    client = make_app(db_pool_size=1).test_client()
    prefix = f"pooled-{secrets.token_hex(4)}-"
    try:
        assert client.post(ITEMS, json={"name": f"{prefix}1"}).status_code == 201
        assert client.get("/readyz").status_code == 200
        assert client.post(ITEMS, json={"name": f"{prefix}2"}).status_code == 201
        with psycopg.connect(database_url) as other:  # another session sees both
            stored = other.execute(
                "SELECT count(*) FROM items WHERE name LIKE %s", (f"{prefix}%",)
            ).fetchone()
        assert stored == (2,)
    finally:
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("DELETE FROM items WHERE name LIKE %s", (f"{prefix}%",))


def test_a_transaction_left_open_is_logged_and_the_connection_discarded(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = make_app(db_pool_size=1)

    @app.get("/leaky")
    def leaky() -> str:
        get_db(app).connection().execute("BEGIN")  # and never commits
        return "{}"

    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="service.store.database"):
        assert client.get("/leaky").status_code == 200
    assert any("left a database transaction open" in r.getMessage() for r in caplog.records)
    assert client.get(f"{ITEMS}?limit=1").status_code == 200  # a fresh connection serves


def test_requests_after_failed_ones_run_normally_in_a_test_transaction(
    client: FlaskClient, connection: psycopg.Connection[Any]
) -> None:
    """Each request of the test fixture runs in a savepoint; failed ones are undone and
    released, so any number of them leave the test's transaction as it was."""
    assert client.post(ITEMS, json={"name": "twice"}).status_code == 201
    for _ in range(5):
        assert client.post(ITEMS, json={"name": "twice"}).status_code == 409
    for n in range(5):
        assert client.post(ITEMS, json={"name": f"after-{n}"}).status_code == 201
    with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
        connection.execute("RELEASE SAVEPOINT request")  # none is left behind
