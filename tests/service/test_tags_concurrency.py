"""Two PATCHes of one item's tags at the same time, on their own connections (committed,
not rolled back): the item ends with one of the two sets, never a mix."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.conftest import create_row

ROUNDS = 30


@pytest.fixture
def committing_app(make_app: Callable[..., Flask]) -> Flask:
    """An app on its own pool: each request commits, as in production."""
    app: Flask = make_app(db_pool_size=3, db_max_overflow=4)  # the test client, two threads
    return app


def test_concurrent_tag_replacements_never_mix(committing_app: Flask) -> None:
    client = committing_app.test_client()
    run = secrets.token_hex(4)
    sets = [[f"{run}-a{i}" for i in range(5)], [f"{run}-b{i}" for i in range(5)]]
    tags = [create_row(client, "/api/v1/tags", name=name) for names in sets for name in names]
    row = create_row(client, "/api/v1/items", name=f"{run}-contested")
    url = f"/api/v1/items/{row['id']}"
    try:
        for _ in range(ROUNDS):
            start = threading.Barrier(2)
            statuses: list[int] = []

            def patch(
                names: list[str], start: threading.Barrier = start, statuses: list[int] = statuses
            ) -> None:
                own = committing_app.test_client()  # each thread keeps its own connection
                start.wait()
                statuses.append(own.patch(url, json={"tags": names}).status_code)

            threads = [threading.Thread(target=patch, args=(names,)) for names in sets]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert statuses == [200, 200]
            final: Any = client.get(url).json["tags"]
            assert final in sets, f"a mix of both PATCHes: {final}"
    finally:
        client.delete(url)
        for created in tags:
            client.delete(f"/api/v1/tags/{created['id']}")
