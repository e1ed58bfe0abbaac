"""The request's database connection on the real pool (no test transaction around it):
writes are committed when acknowledged, and a connection goes back to the pool clean."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.db import get_db

ITEMS = "/api/v1/items"


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
    with caplog.at_level(logging.ERROR, logger="service.db"):
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
