"""/api/v1/items/{item_id}/notes and /api/v1/notes/{note_id}: a child resource, against real
PostgreSQL. Its parent is looked up in the statement that reads or writes it: a missing
parent, or another owner's, is a 404, also when the parent goes between the two."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.store.models import NOTE_MAX
from tests.conftest import assert_error, create_row

ITEMS = "/api/v1/items"
NOTES = "/api/v1/notes"


def notes_of(item: dict[str, Any]) -> str:
    return f"{ITEMS}/{item['id']}/notes"


def test_a_note_is_created_under_its_item_and_found_by_its_own_url(client: FlaskClient) -> None:
    item = create_row(client, ITEMS, name="noted")
    response = client.post(notes_of(item), json={"body": "first\nline two"})
    assert response.status_code == 201
    note = response.json
    assert set(note) == {"id", "owner", "item_id", "body", "created_at"}
    assert (note["item_id"], note["owner"], note["body"]) == (item["id"], "anonymous",
                                                             "first\nline two")  # fmt: skip
    assert response.headers["Location"] == f"{NOTES}/{note['id']}"
    assert client.get(f"{NOTES}/{note['id']}").json == note
    second = create_row(client, notes_of(item), body="second")
    page = client.get(f"{notes_of(item)}?limit=1").json
    assert page == {"notes": [note], "next_cursor": str(note["id"])}
    assert client.get(f"{notes_of(item)}?cursor={note['id']}").json["notes"] == [second]
    assert client.delete(f"{NOTES}/{note['id']}").status_code == 204
    assert_error(client.get(f"{NOTES}/{note['id']}"), 404, "not_found")


def test_an_item_without_notes_is_an_empty_page_and_a_missing_one_a_404(
    client: FlaskClient,
) -> None:
    item = create_row(client, ITEMS, name="quiet")
    assert client.get(notes_of(item)).json == {"notes": [], "next_cursor": None}
    for response in (client.get(f"{ITEMS}/999999999/notes"),
                     client.post(f"{ITEMS}/999999999/notes", json={"body": "x"})):  # fmt: skip
        assert_error(response, 404, "not_found")
        assert response.json["error"]["message"] == "Item 999999999 does not exist."
    assert_error(client.get(f"{ITEMS}/abc/notes"), 422, "validation_error", "path.item_id")


def test_deleting_an_item_deletes_its_notes(client: FlaskClient) -> None:
    item = create_row(client, ITEMS, name="goes")
    note = create_row(client, notes_of(item), body="goes too")
    assert client.delete(f"{ITEMS}/{item['id']}").status_code == 204
    assert_error(client.get(f"{NOTES}/{note['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body.body"), ({"body": ""}, "body.body"), ({"body": "x" * (NOTE_MAX + 1)}, "body.body"),
     ({"body": "nul\x00"}, "body.body"), ({"body": "x", "item_id": 3}, "body.item_id"),
     ({"body": "x", "owner": "bob"}, "body.owner")],
)  # fmt: skip
def test_an_invalid_note_is_422_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    item = create_row(client, ITEMS, name="strict")
    assert_error(client.post(notes_of(item), json=body), 422, "validation_error", field)


def test_a_note_belongs_to_its_items_owner_whoever_writes_it(
    protected_app: Flask, callers: dict[str, dict[str, str]]
) -> None:
    client = protected_app.test_client()
    item = client.post(ITEMS, json={"name": "alices"}, headers=callers["alice"]).json
    by_admin = client.post(notes_of(item), json={"body": "from support"}, headers=callers["admin"])
    assert by_admin.status_code == 201 and by_admin.json["owner"] == "alice"
    assert client.get(notes_of(item), headers=callers["alice"]).json["notes"] == [by_admin.json]
    assert_error(client.get(notes_of(item), headers=callers["bob"]), 404, "not_found")


def test_a_parent_deleted_while_its_note_is_written_is_a_404(
    make_app: Callable[..., Flask],
) -> None:
    """The INSERT reads the item, then its foreign key waits for the transaction that is
    deleting it; once that commits, the key is missing: 404 for the item, not a 409."""
    app = make_app(db_pool_size=2)
    client = app.test_client()
    item = create_row(client, ITEMS, name="vanishing")
    url = app.extensions["settings"].database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as deleting:
        deleting.execute("DELETE FROM items WHERE id = %s", (item["id"],))  # not committed
        answers: list[Any] = []
        writer = threading.Thread(
            target=lambda: answers.append(client.post(notes_of(item), json={"body": "late"}))
        )
        writer.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
        with psycopg.connect(url, autocommit=True) as watcher:
            for _ in range(500):  # until the INSERT waits for the delete's row lock
                if (waited := watcher.execute(waiting).fetchone() != (0,)) is True:
                    break
                threading.Event().wait(0.02)
        deleting.commit()
        assert waited, "the INSERT never waited for the DELETE: the race was not run"
        writer.join(timeout=30)
    (response,) = answers
    assert_error(response, 404, "not_found")
    assert response.json["error"]["message"] == f"Item {item['id']} does not exist."
