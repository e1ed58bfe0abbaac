"""Object-level authorization (OWASP API1), the contract of issue 25, with real tokens
against the app as deployed and real PostgreSQL: a caller reaches only its own rows; an
`items:admin` token reaches everyone's; with access control off, every request is
`anonymous` and also reaches the rows from before owners existed.

tests/service/test_owner_matrix.py runs the same rules over every operation of the
OpenAPI document; this file holds what needs the resources' meaning (tags on items,
names, `?tag=`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import create_app
from service.config import AuthSettings, Settings
from service.store.database import get_db
from tests.conftest import assert_error

ITEMS = "/api/v1/items"
TAGS = "/api/v1/tags"
Call = Callable[..., Any]


@pytest.fixture
def call(protected_app: Flask, callers: dict[str, dict[str, str]]) -> Call:
    """call(who, method, path, **kwargs): `who` is alice, bob or admin."""
    client = protected_app.test_client()

    def request(who: str, method: str, path: str, **kwargs: Any) -> Any:
        return client.open(path, method=method, headers=callers[who], **kwargs)

    return request


def make(call: Call, who: str, url: str, **body: Any) -> dict[str, Any]:
    response = call(who, "POST", url, json=body)
    assert response.status_code == 201, response.json
    row: dict[str, Any] = response.json
    return row


def ids(call: Call, who: str, url: str) -> list[int]:
    response = call(who, "GET", url)
    assert response.status_code == 200, response.json
    key = "tags" if url.startswith(TAGS) else "items"
    return [row["id"] for row in response.json[key]]


def test_the_owner_is_the_tokens_subject_and_no_body_changes_it(call: Call) -> None:
    item = make(call, "alice", ITEMS, name="mine")
    assert item["owner"] == "alice"
    assert make(call, "alice", TAGS, name="mine")["owner"] == "alice"
    url = f"{ITEMS}/{item['id']}"
    for body in ({"owner": "bob"}, {"name": "renamed", "owner": "alice"}):
        response = call("alice", "PATCH", url, json=body)
        assert_error(response, 422, "validation_error", "body.owner")
        assert "set from the token" in response.json["error"]["details"][0]["message"]
    assert_error(call("alice", "POST", ITEMS, json={"name": "x", "owner": "bob"}), 422,
                 "validation_error", "body.owner")  # fmt: skip
    assert call("admin", "PATCH", url, json={"name": "by-admin"}).json["owner"] == "alice"
    assert call("alice", "GET", url).json["owner"] == "alice"
    assert make(call, "admin", ITEMS, name="admins-own")["owner"] == "root"


def test_another_owners_row_answers_exactly_as_a_missing_one(call: Call) -> None:
    rows = {ITEMS: make(call, "alice", ITEMS, name="secret"), TAGS: make(call, "alice", TAGS,
                                                                        name="secret")}  # fmt: skip
    for collection, row in rows.items():
        url = f"{collection}/{row['id']}"
        methods = ["GET", "DELETE"] + (["PATCH"] if collection == ITEMS else [])
        foreign = {m: call("bob", m, url, json={"name": "stolen"}) for m in methods}
        assert call("alice", "DELETE", url).status_code == 204
        for method, response in foreign.items():
            missing = call("alice", method, url, json={"name": "stolen"})
            assert response.status_code == missing.status_code == 404, method
            assert response.get_data() == missing.get_data(), method


def test_lists_pages_and_the_tag_filter_hold_only_the_callers_rows(call: Call) -> None:
    for who in ("alice", "bob"):
        make(call, who, TAGS, name="red")
    alices = [make(call, "alice", ITEMS, name=f"a{i}", tags=["red"])["id"] for i in range(3)]
    bobs = [make(call, "bob", ITEMS, name=f"b{i}", tags=["red"])["id"] for i in range(3)]
    first = min(alices + bobs) - 1
    seen: list[int] = []
    url = f"{ITEMS}?limit=2&cursor={first}"
    while url:  # page by page, as a client does
        page = call("alice", "GET", url).json
        seen += [row["id"] for row in page["items"]]
        url = page["next_cursor"] and f"{ITEMS}?limit=2&cursor={page['next_cursor']}"
    assert seen == alices
    assert ids(call, "alice", f"{ITEMS}?tag=red&cursor={first}") == alices
    assert ids(call, "bob", f"{ITEMS}?tag=red&cursor={first}") == bobs
    bob_tags = ids(call, "bob", TAGS)
    assert bob_tags and not set(bob_tags) & set(ids(call, "alice", TAGS))


def test_names_are_unique_per_owner_and_a_conflict_names_only_the_callers_rows(
    call: Call,
) -> None:
    for who in ("alice", "bob"):  # neither learns of the other's
        make(call, who, TAGS, name="red")
        make(call, who, ITEMS, name="same")
    assert_error(call("alice", "POST", TAGS, json={"name": "red"}), 409, "conflict", "name")
    assert_error(call("bob", "POST", ITEMS, json={"name": "same"}), 409, "conflict", "name")
    other = make(call, "bob", ITEMS, name="other")
    response = call("bob", "PATCH", f"{ITEMS}/{other['id']}", json={"name": "same"})
    assert_error(response, 409, "conflict", "name")
    # An admin renaming alice's item clashes with alice's names, not with its own or bob's.
    alices = make(call, "alice", ITEMS, name="alices")
    assert call("admin", "PATCH", f"{ITEMS}/{alices['id']}", json={"name": "other"}).json[
        "name"
    ] == "other"  # fmt: skip


def test_an_item_carries_only_its_owners_tags(call: Call) -> None:
    make(call, "bob", TAGS, name="bobs-only")
    response = call("alice", "POST", ITEMS, json={"name": "x", "tags": ["bobs-only"]})
    assert_error(response, 422, "validation_error", "body.tags")
    assert response.json["error"]["details"][0]["message"] == "unknown tag: bobs-only"
    for who in ("alice", "bob"):
        make(call, who, TAGS, name="red")
    item = make(call, "alice", ITEMS, name="tagged")
    # An admin setting alice's tags gets alice's `red`, not bob's, nor its own.
    url = f"{ITEMS}/{item['id']}"
    assert call("admin", "PATCH", url, json={"tags": ["red"]}).json["tags"] == ["red"]
    response = call("admin", "PATCH", url, json={"tags": ["bobs-only"]})
    assert_error(response, 422, "validation_error", "body.tags")
    bobs_red = next(t for t in call("bob", "GET", TAGS).json["tags"] if t["name"] == "red")
    assert call("bob", "DELETE", f"{TAGS}/{bobs_red['id']}").status_code == 204
    assert call("alice", "GET", url).json["tags"] == ["red"]  # still alice's red


def test_deleting_a_tag_unlinks_it_only_from_its_owners_items(call: Call) -> None:
    tags = {who: make(call, who, TAGS, name="red") for who in ("alice", "bob")}
    items = {who: make(call, who, ITEMS, name="holder", tags=["red"]) for who in tags}
    assert call("alice", "DELETE", f"{TAGS}/{tags['alice']['id']}").status_code == 204
    assert call("alice", "GET", f"{ITEMS}/{items['alice']['id']}").json["tags"] == []
    assert call("bob", "GET", f"{ITEMS}/{items['bob']['id']}").json["tags"] == ["red"]


def test_an_admin_reaches_every_owners_rows_and_lists_take_an_owner(call: Call) -> None:
    for who in ("alice", "bob"):
        make(call, who, TAGS, name="red")
    alices = make(call, "alice", ITEMS, name="a", tags=["red"])
    bobs = make(call, "bob", ITEMS, name="b", tags=["red"])
    first = min(alices["id"], bobs["id"]) - 1
    assert call("admin", "GET", f"{ITEMS}/{alices['id']}").json == alices
    both = [alices["id"], bobs["id"]]
    assert ids(call, "admin", f"{ITEMS}?cursor={first}") == both
    assert ids(call, "admin", f"{ITEMS}?tag=red&cursor={first}") == both  # every owner's red
    assert ids(call, "admin", f"{ITEMS}?tag=red&owner=bob&cursor={first}") == [bobs["id"]]
    assert ids(call, "admin", f"{ITEMS}?owner=alice&cursor={first}") == [alices["id"]]
    assert len(ids(call, "admin", f"{TAGS}?owner=bob")) == 1
    patched = call("admin", "PATCH", f"{ITEMS}/{bobs['id']}", json={"description": "seen"})
    assert patched.json["owner"] == "bob" and patched.json["description"] == "seen"
    assert call("admin", "DELETE", f"{ITEMS}/{bobs['id']}").status_code == 204
    assert_error(call("bob", "GET", f"{ITEMS}/{bobs['id']}"), 404, "not_found")


def test_an_owner_filter_without_items_admin_is_refused_naming_the_field(call: Call) -> None:
    mine = make(call, "alice", ITEMS, name="mine")
    make(call, "bob", TAGS, name="red")
    make(call, "bob", ITEMS, name="theirs", tags=["red"])
    cursor = mine["id"] - 1
    for path in (f"{ITEMS}?owner=bob", f"{ITEMS}?tag=red&owner=bob", f"{TAGS}?owner=bob",
                 f"{ITEMS}/{mine['id']}/notes?owner=bob"):  # fmt: skip
        refused = call("alice", "GET", path)
        assert_error(refused, 403, "insufficient_scope", "query.owner")
        assert "items:admin" in refused.json["error"]["message"]
        assert "`bob`" in refused.json["error"]["message"]
    assert ids(call, "alice", f"{ITEMS}?owner=alice&cursor={cursor}") == [mine["id"]]


def test_an_owner_filter_with_access_control_off_names_the_two_owners_it_reaches(
    app: Flask,
) -> None:
    client = app.test_client()
    refused = client.get(f"{ITEMS}?owner=alice")
    assert_error(refused, 403, "insufficient_scope", "query.owner")
    assert "`anonymous` and `unowned`" in refused.json["error"]["message"]
    assert client.get(f"{ITEMS}?owner=unowned").status_code == 200


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"subject": "anonymous"}, "reserved owner `anonymous`"),
        ({"subject": "unowned"}, "reserved owner `unowned`"),
        ({"subject": ""}, "names no owner"),
        ({"subject": "x" * 256}, "longer than 255"),
        ({"subject": "tab\there"}, "unprintable"),
    ],
)
def test_a_token_that_names_no_usable_owner_is_refused_with_401(
    protected_app: Flask, bearer: Callable[..., dict[str, str]], claims: Any, why: str
) -> None:
    response = protected_app.test_client().get(ITEMS, headers=bearer(**claims))
    assert_error(response, 401, "invalid_token")
    assert why in response.json["error"]["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_owner_can_be_another_claim(
    settings: Settings,
    auth_settings: AuthSettings,
    connection: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
) -> None:
    """AUTH_OWNER_CLAIM=tenant_id: two people of one tenant share its rows."""
    app = create_app(replace(settings, auth=replace(auth_settings, owner_claim="tenant_id")))
    get_db(app).bind_to(connection)
    client = app.test_client()
    ann, ben = (bearer(subject=who, tenant_id="acme") for who in ("ann", "ben"))
    item = client.post(ITEMS, json={"name": "shared"}, headers=ann).json
    assert item["owner"] == "acme"
    assert client.get(f"{ITEMS}/{item['id']}", headers=ben).status_code == 200
    other = bearer(subject="ann", tenant_id="globex")
    assert_error(client.get(f"{ITEMS}/{item['id']}", headers=other), 404, "not_found")
    for refused, why in [
        (bearer(subject="ann"), "`tenant_id` claim is missing"),
        (bearer(subject="ann", tenant_id=7), "`tenant_id` claim is missing or not a string"),
        (bearer(subject="ann", tenant_id="anonymous"), "reserved owner `anonymous`"),
    ]:
        response = client.get(ITEMS, headers=refused)
        assert_error(response, 401, "invalid_token")
        assert why in response.json["error"]["message"]


def test_with_access_control_off_every_request_is_anonymous_and_reaches_the_old_rows(
    client: FlaskClient, connection: psycopg.Connection[Any]
) -> None:
    """The dev app (no issuer): rows from before owners existed (`unowned`) stay visible,
    as after an upgrade of `make run`'s database; a token owner's rows do not."""
    old, alices = (
        connection.execute(
            "INSERT INTO items (name, owner) VALUES (%s, %s) RETURNING id", (name, owner)
        ).fetchone()[0]  # type: ignore[index]
        for name, owner in (("from-before", "unowned"), ("alices", "alice"))
    )
    created = client.post(ITEMS, json={"name": "new"}).json
    assert created["owner"] == "anonymous"
    assert client.get(f"{ITEMS}/{old}").json["owner"] == "unowned"
    assert client.patch(f"{ITEMS}/{old}", json={"description": "kept"}).status_code == 200
    assert_error(client.get(f"{ITEMS}/{alices}"), 404, "not_found")
    cursor = min(old, alices) - 1
    listed = [row["id"] for row in client.get(f"{ITEMS}?cursor={cursor}").json["items"]]
    assert listed == [old, created["id"]]
    only_old = client.get(f"{ITEMS}?cursor={cursor}&owner=unowned").json["items"]
    assert [row["id"] for row in only_old] == [old]
