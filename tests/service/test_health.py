"""/livez never touches the database; /readyz reports the database and the schema."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from service.store import schema_revision
from tests.conftest import PostgresServer, migrate
from tools.localpg import free_port

DEAD_URL = "postgresql+psycopg://app:pw@127.0.0.1:{port}/app"


def test_livez_is_ok(client: FlaskClient) -> None:
    response = client.get("/livez")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_is_ok_with_or_without_the_contract_steps(
    client: FlaskClient, make_app: Any, empty_database: str
) -> None:
    response = client.get("/readyz")  # the suite's database: every revision, contract too
    assert response.status_code == 200
    schema = {"database": schema_revision.latest_revision(), "code": schema_revision.code_head()}
    assert response.json["schema"] == schema
    migrate(empty_database, schema_revision.code_head())  # what `migrate` alone leaves
    url = empty_database.replace("postgresql://", "postgresql+psycopg://")
    response = make_app(database_url=url).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.json["schema"]["database"] == response.json["schema"]["code"]


def test_database_down_means_not_ready_but_alive(make_app: Any) -> None:
    client = make_app(database_url=DEAD_URL.format(port=free_port())).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "reason": "database unreachable"}
    assert client.get("/livez").status_code == 200


def test_api_answers_503_json_when_the_database_is_down(make_app: Any) -> None:
    client = make_app(database_url=DEAD_URL.format(port=free_port())).test_client()
    response = client.get("/api/v1/items/1")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"]
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_unmigrated_database_is_not_ready(make_app: Any, empty_database: str) -> None:
    url = empty_database.replace("postgresql://", "postgresql+psycopg://")
    response = make_app(database_url=url).test_client().get("/readyz")
    assert response.status_code == 503
    assert "no schema" in response.json["reason"]


def test_schema_behind_the_code_is_not_ready(
    make_app: Any, empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(empty_database)
    # The code's migrations as a newer release would ship them: one revision past ours.
    chain = schema_revision._script()
    future = schema_revision.Chain(("future", *chain.revisions))
    monkeypatch.setattr(schema_revision, "_script", lambda: future)
    url = empty_database.replace("postgresql://", "postgresql+psycopg://")
    response = make_app(database_url=url).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["schema"] == {"database": chain.latest, "code": "future"}
    assert "behind" in response.json["reason"]


def test_schema_ahead_of_the_code_is_ready(make_app: Any, empty_database: str) -> None:
    migrate(empty_database)
    engine = create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_a_newer_release'"))
    engine.dispose()
    url = empty_database.replace("postgresql://", "postgresql+psycopg://")
    response = make_app(database_url=url).test_client().get("/readyz")
    assert response.status_code == 200
    assert "ahead" in response.json["reason"]


def test_one_migration_head() -> None:
    assert schema_revision.code_head()


def test_postgres_fixture_is_real(postgres: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres.admin_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_worker_whose_breaker_says_the_database_does_not_answer_is_not_ready(
    make_app: Any,
) -> None:
    """Tripped as a read that reached DB_DEADLINE_MS trips it: /readyz and the API fail
    fast until the breaker's probe (SELECT 1, on a connection of its own) succeeds."""
    app = make_app()
    client, breaker = app.test_client(), app.extensions["db"].breaker
    assert client.get("/readyz").status_code == 200
    breaker.trip(writing=False)
    readyz = client.get("/readyz")
    assert readyz.status_code == 503 and readyz.json["reason"] == "database not answering"
    item = client.get("/api/v1/items/1")
    assert item.status_code == 503 and item.json["error"]["code"] == "database_unavailable"
    assert wait_for(lambda: client.get("/readyz").status_code == 200)
    assert wait_for(lambda: not breaker.writes_open)  # probed next, as a commit
    assert client.post("/api/v1/items", json={"name": "after the probes"}).status_code == 201


def test_a_breaker_open_for_writes_only_keeps_reads_and_readiness(make_app: Any) -> None:
    """A write that reached its deadline on a server that answers (a lost standby): writes
    fail fast, reads and /readyz go on; the probe's commit closes it."""
    app = make_app()
    client, breaker = app.test_client(), app.extensions["db"].breaker
    created = client.post("/api/v1/items", json={"name": "before the trip"})
    breaker.trip(writing=True)
    refused = client.post("/api/v1/items", json={"name": "while open"})
    assert refused.status_code == 503, refused.json
    assert "not confirming writes" in refused.json["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    assert client.get(f"/api/v1/items/{created.json['id']}").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert wait_for(lambda: not breaker.writes_open)
    assert client.post("/api/v1/items", json={"name": "after the probe"}).status_code == 201


def wait_for(condition: Any, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
