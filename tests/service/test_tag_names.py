"""`items.tag_names` (issue 26): after every write path it holds exactly the names of the
item's links, sorted; deleting a tag on more items than one batch answers 202 and leaves
the rest to the sweeper, which one process runs at a time and which resumes where a
killed one stopped."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.config import Settings
from service.store.database import get_db
from service.store.tag_sweeper import SWEEP_LOCK_KEY, sweep
from service.store.tags import SWEEP_BATCH, replace_item_tags
from tests.conftest import assert_error, create_row, tag_names_mismatched

ITEMS, TAGS = "/api/v1/items", "/api/v1/tags"
mismatched = tag_names_mismatched


def links_of(conn: psycopg.Connection[Any], tag_id: int) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM item_tags WHERE tag_id = %s", (tag_id,)
    ).fetchone() or (0,)
    return int(count)


@pytest.fixture
def small_batches(settings: Settings, connection: psycopg.Connection[Any]) -> FlaskClient:
    """An app whose DELETE finishes a tag only if it has at most 3 links."""
    app = create_app(replace(settings, tag_delete_batch=3))
    get_db(app).bind_to(connection)
    return app.test_client()


def test_every_write_path_keeps_tag_names_equal_to_the_links(
    client: FlaskClient, connection: psycopg.Connection[Any]
) -> None:
    for name in ("red", "green", "blue"):
        create_row(client, TAGS, name=name)
    plain = create_row(client, ITEMS, name="plain")
    tagged = create_row(client, ITEMS, name="tagged", tags=["red", "blue", "red"])
    assert tagged["tags"] == ["blue", "red"] and plain["tags"] == []
    assert mismatched(connection) == []
    patched = client.patch(f"{ITEMS}/{tagged['id']}", json={"tags": ["green"]}).json
    assert patched["tags"] == ["green"] and mismatched(connection) == []
    renamed = client.patch(f"{ITEMS}/{tagged['id']}", json={"name": "renamed"}).json
    assert renamed["tags"] == ["green"] and mismatched(connection) == []
    client.patch(f"{ITEMS}/{plain['id']}", json={"tags": ["green", "red"]})
    assert client.get(f"{ITEMS}/{plain['id']}").json["tags"] == ["green", "red"]
    green = client.get(f"{TAGS}?limit=100").json["tags"]
    green_id = next(t["id"] for t in green if t["name"] == "green")
    assert client.delete(f"{TAGS}/{green_id}").status_code == 204  # two links: one batch
    assert client.get(f"{ITEMS}/{plain['id']}").json["tags"] == ["red"]
    assert client.get(f"{ITEMS}/{tagged['id']}").json["tags"] == []
    assert mismatched(connection) == []
    # A refused write (an unknown tag) writes nothing: neither item nor names.
    assert_error(
        client.post(ITEMS, json={"name": "x", "tags": ["red", "nope"]}), 422, "validation_error"
    )
    assert_error(
        client.patch(f"{ITEMS}/{plain['id']}", json={"tags": ["nope"]}), 422, "validation_error"
    )
    assert client.get(f"{ITEMS}/{plain['id']}").json["tags"] == ["red"]
    assert mismatched(connection) == []


def test_a_tag_on_more_items_than_a_batch_is_gone_at_once_and_swept_after(
    small_batches: FlaskClient, connection: psycopg.Connection[Any]
) -> None:
    client = small_batches
    big = create_row(client, TAGS, name="big")
    create_row(client, TAGS, name="kept")
    ids = [create_row(client, ITEMS, name=f"i{n}", tags=["big", "kept"])["id"] for n in range(10)]
    response = client.delete(f"{TAGS}/{big['id']}")
    # Answered without touching its 10 links (3 per batch): the request's work is bounded.
    assert response.status_code == 202 and response.data == b""
    assert links_of(connection, big["id"]) == 10
    assert client.get(f"{TAGS}/{big['id']}").status_code == 404
    assert client.delete(f"{TAGS}/{big['id']}").status_code == 404
    assert "big" not in {t["name"] for t in client.get(f"{TAGS}?limit=100").json["tags"]}
    assert client.get(f"{ITEMS}?tag=big").json == {"items": [], "next_cursor": None}
    refused = client.post(ITEMS, json={"name": "late", "tags": ["big"]})
    assert_error(refused, 422, "validation_error")
    assert client.post(TAGS, json={"name": "big"}).status_code == 409  # taken until swept
    assert mismatched(connection) == []

    assert sweep(connection, batch=3) == 1
    assert links_of(connection, big["id"]) == 0
    for item_id in ids:
        assert client.get(f"{ITEMS}/{item_id}").json["tags"] == ["kept"]
    assert mismatched(connection) == []
    assert connection.execute(
        "SELECT count(*) FROM tags WHERE id = %s", (big["id"],)
    ).fetchone() == (0,)
    assert client.post(TAGS, json={"name": "big"}).status_code == 201


def test_one_sweeper_at_a_time(small_batches: FlaskClient, database_url: str) -> None:
    client = small_batches
    create_row(client, TAGS, name="wide")
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (SWEEP_LOCK_KEY,))
        try:
            with psycopg.connect(database_url, autocommit=True) as mine:
                assert sweep(mine, batch=3) is None  # the other holds the lock
        finally:
            other.execute("SELECT pg_advisory_unlock(%s)", (SWEEP_LOCK_KEY,))


@pytest.fixture
def committed(
    make_app: Callable[..., Flask], database_url: str
) -> Iterator[tuple[FlaskClient, str]]:
    """A committing app whose DELETE leaves any tag of more than 3 links to the sweeper, and
    a run prefix; its items and tags are deleted after."""
    app = make_app(tag_delete_batch=3, db_pool_size=3, db_max_overflow=4)
    run = secrets.token_hex(4)
    yield app.test_client(), run
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM items WHERE name LIKE %s", (f"{run}-%",))
        conn.execute("DELETE FROM tags WHERE name LIKE %s", (f"{run}-%",))


def _tag_on_items(client: FlaskClient, database_url: str, run: str, items: int) -> int:
    """A tag of the caller's (anonymous, auth off) on `items` new items, seeded in SQL."""
    tag = create_row(client, TAGS, name=f"{run}-wide")
    other = create_row(client, TAGS, name=f"{run}-other")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """WITH new AS (
                 INSERT INTO items (owner, name, tag_names)
                 SELECT 'anonymous', %(run)s || '-item-' || n, ARRAY[%(other)s, %(wide)s]
                 FROM generate_series(1, %(items)s) AS n RETURNING id)
               INSERT INTO item_tags (item_id, tag_id)
               SELECT id, t FROM new, unnest(ARRAY[%(wide_id)s, %(other_id)s]::bigint[]) AS t""",
            {"run": run, "items": items, "wide": tag["name"], "other": other["name"],
             "wide_id": tag["id"], "other_id": other["id"]},
        )  # fmt: skip
        assert mismatched(conn) == []
    return int(tag["id"])


def test_patches_during_a_sweep_leave_names_equal_to_links(
    committed: tuple[FlaskClient, str], database_url: str
) -> None:
    client, run = committed
    tag_id = _tag_on_items(client, database_url, run, 60)
    create_row(client, TAGS, name=f"{run}-new")
    assert client.delete(f"{TAGS}/{tag_id}").status_code == 202
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [
            i
            for (i,) in conn.execute(
                "SELECT id FROM items WHERE name LIKE %s ORDER BY id", (f"{run}-item-%",)
            )
        ]
        done: list[int | None] = []
        sweeper = threading.Thread(target=lambda: done.append(sweep(conn, batch=1)))
        sweeper.start()
        for item_id in ids[::-1]:  # from the end, to meet the sweep (in id order) midway
            names = [f"{run}-new", f"{run}-other"]
            assert client.patch(f"{ITEMS}/{item_id}", json={"tags": names}).status_code == 200
        sweeper.join(timeout=60)
        assert done and done[0] is not None and done[0] >= 1
        assert links_of(conn, tag_id) == 0
        assert mismatched(conn) == []


def wait_for_a_lock_wait(watcher: psycopg.Connection[Any], pid: int | None = None) -> None:
    """Until a backend (`pid`, or any other than the watcher's) waits for a lock."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (waiting,) = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
            " AND (%(pid)s::int IS NULL OR pid = %(pid)s::int)",
            {"pid": pid},
        ).fetchone() or (0,)
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("no backend came to wait for the lock")


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """`call` started in a thread; its result, or what it raised, lands in the list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # the test's assert shows it
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_the_sweeper_takes_an_items_row_before_its_links(
    committed: tuple[FlaskClient, str], database_url: str
) -> None:
    """Every writer locks an item's row before its links (PATCH, DELETE's cascade): a
    batch that took a link first would deadlock with a PATCH holding the item's row. And a
    batch counts the links it found, also the one that PATCH took away: more may follow."""
    client, run = committed
    tag_id = _tag_on_items(client, database_url, run, 5)
    assert client.delete(f"{TAGS}/{tag_id}").status_code == 202
    with (
        psycopg.connect(database_url, autocommit=True) as watcher,
        psycopg.connect(database_url) as writer,
        psycopg.connect(database_url, autocommit=True) as sweeping,
    ):
        (first,) = watcher.execute(
            "SELECT min(item_id) FROM item_tags WHERE tag_id = %s", (tag_id,)
        ).fetchone() or (None,)
        # A PATCH's order: the item's row, then (below) its links.
        writer.execute("UPDATE items SET updated_at = now() WHERE id = %s", (first,))
        params = {"id": tag_id, "name": f"{run}-wide", "batch": 2}
        thread, found = in_thread(lambda: sweeping.execute(SWEEP_BATCH, params).fetchone())
        wait_for_a_lock_wait(watcher, sweeping.info.backend_pid)
        # Had the batch deleted this link before waiting, this would wait for the batch
        # while the batch waits for us: a deadlock, one of the two killed.
        writer.execute("DELETE FROM item_tags WHERE item_id = %s AND tag_id = %s", (first, tag_id))
        writer.execute(
            "UPDATE items SET tag_names = array_remove(tag_names, %s) WHERE id = %s",
            (f"{run}-wide", first),
        )
        writer.commit()
        thread.join(timeout=30)
        assert found == [(2,)]  # both found, one deleted: not the last batch
        assert links_of(watcher, tag_id) == 3
        assert sweep(sweeping, batch=2) == 1
        assert links_of(watcher, tag_id) == 0 and mismatched(watcher) == []


def _link_uncommitted(
    client: FlaskClient, writer: psycopg.Connection[Any], run: str
) -> dict[str, Any]:
    """A new item, linked to the run's wide tag as a PATCH of its tags does, left
    uncommitted: the item's row, then its links (whose foreign key check holds the tag's
    row KEY SHARE)."""
    late = create_row(client, ITEMS, name=f"{run}-late")
    with writer.cursor() as cursor:
        cursor.execute("UPDATE items SET updated_at = now() WHERE id = %s", (late["id"],))
        replace_item_tags(cursor, item_id=late["id"], owner="anonymous", names=[f"{run}-wide"])
    return late


def test_a_link_written_as_the_sweep_ends_is_swept_not_left_named(
    committed: tuple[FlaskClient, str], database_url: str
) -> None:
    """A PATCH that found the tag live before its mark links it while the sweeper drops
    the row: the drop waits for it, sees its link, and the sweeper takes that off too
    (the FK's cascade would have taken the link and left the name on the item)."""
    client, run = committed
    tag_id = _tag_on_items(client, database_url, run, 5)
    with (
        psycopg.connect(database_url, autocommit=True) as watcher,
        psycopg.connect(database_url) as writer,
        psycopg.connect(database_url, autocommit=True) as sweeping,
    ):
        late = _link_uncommitted(client, writer, run)
        assert client.delete(f"{TAGS}/{tag_id}").status_code == 202
        thread, done = in_thread(lambda: sweep(sweeping, batch=3))
        wait_for_a_lock_wait(watcher, sweeping.info.backend_pid)  # the drop, for the tag
        writer.commit()
        thread.join(timeout=30)
        assert done == [1]
        assert links_of(watcher, tag_id) == 0 and mismatched(watcher) == []
    assert client.get(f"{ITEMS}/{late['id']}").json["tags"] == []


def test_a_small_tag_linked_during_its_delete_is_left_to_the_sweeper(
    committed: tuple[FlaskClient, str], database_url: str
) -> None:
    """The same race in DELETE's own transaction (a tag within one batch): the drop finds
    the new link, so the answer is 202 and the sweeper finishes."""
    client, run = committed
    tag_id = _tag_on_items(client, database_url, run, 2)
    with (
        psycopg.connect(database_url, autocommit=True) as watcher,
        psycopg.connect(database_url) as writer,
    ):
        _link_uncommitted(client, writer, run)
        thread, answered = in_thread(lambda: client.delete(f"{TAGS}/{tag_id}").status_code)
        wait_for_a_lock_wait(watcher)  # the request's drop, for the tag
        writer.commit()
        thread.join(timeout=30)
        assert answered == [202]
        assert sweep(watcher, batch=3) == 1
        assert links_of(watcher, tag_id) == 0 and mismatched(watcher) == []


def test_a_killed_sweeper_is_resumed_by_the_next(
    committed: tuple[FlaskClient, str], database_url: str
) -> None:
    client, run = committed
    tag_id = _tag_on_items(client, database_url, run, 3000)
    assert client.delete(f"{TAGS}/{tag_id}").status_code == 202
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "dev", "TAG_DELETE_BATCH": "1"}
    sweeper = subprocess.Popen(  # one link per transaction: slow enough to be caught midway
        [sys.executable, "-m", "service", "sweep-tags"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            deadline = time.monotonic() + 60
            while links_of(conn, tag_id) > 2500 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            sweeper.send_signal(signal.SIGKILL)
            sweeper.wait(timeout=30)
        left = links_of(conn, tag_id)
        assert 0 < left < 3000, "the sweeper was not caught midway"
        assert mismatched(conn) == []  # each batch committed whole, names and links
        env["TAG_DELETE_BATCH"] = "10000"
        again = subprocess.run([sys.executable, "-m", "service", "sweep-tags"], env=env,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert links_of(conn, tag_id) == 0 and mismatched(conn) == []
        assert conn.execute("SELECT count(*) FROM tags WHERE id = %s", (tag_id,)).fetchone() == (0,)
