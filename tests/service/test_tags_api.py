"""/api/v1/tags, and items carrying tags, against real PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from service.store.models import TAG_NAME_MAX
from tests.conftest import assert_error, create_row

TAGS = "/api/v1/tags"
ITEMS = "/api/v1/items"


def tag(client: FlaskClient, name: str) -> dict[str, Any]:
    return create_row(client, TAGS, name=name)


def item(client: FlaskClient, name: str, **body: Any) -> dict[str, Any]:
    return create_row(client, ITEMS, name=name, **body)


def test_create_get_and_list_tags(client: FlaskClient) -> None:
    response = client.post(TAGS, json={"name": "red"})
    assert response.status_code == 201
    red = response.json
    assert set(red) == {"id", "owner", "name", "created_at"} and red["name"] == "red"
    assert red["owner"] == "anonymous"  # access control is off in this app
    assert response.headers["Location"] == f"{TAGS}/{red['id']}"
    assert client.get(f"{TAGS}/{red['id']}").json == red
    blue = tag(client, "blue")
    page = client.get(f"{TAGS}?limit=1&cursor={red['id']}").json
    assert page == {"tags": [blue], "next_cursor": str(blue["id"])}


def test_a_taken_tag_name_is_409_naming_the_field(client: FlaskClient) -> None:
    tag(client, "taken")
    assert_error(client.post(TAGS, json={"name": "taken"}), 409, "conflict", "name")
    tag(client, "Taken")  # exact match: another case is another name


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "x" * (TAG_NAME_MAX + 1)}, {"name": "two\nlines"}, {"name": 1}],
)
def test_invalid_tag_body_is_422_naming_the_field(client: FlaskClient, body: Any) -> None:
    assert_error(client.post(TAGS, json=body), 422, "validation_error", "body.name")


def test_missing_tag_is_404_and_bad_id_422(client: FlaskClient) -> None:
    assert_error(client.get(f"{TAGS}/999999999"), 404, "not_found")
    assert_error(client.delete(f"{TAGS}/999999999"), 404, "not_found")
    assert_error(client.get(f"{TAGS}/abc"), 422, "validation_error", "path.tag_id")


def test_items_carry_their_tags_sorted_with_duplicates_folded(client: FlaskClient) -> None:
    tag(client, "zeta")
    tag(client, "alpha")
    created = item(client, "tagged", tags=["zeta", "alpha", "zeta"])
    assert created["tags"] == ["alpha", "zeta"]
    assert client.get(f"{ITEMS}/{created['id']}").json == created
    assert item(client, "untagged")["tags"] == []
    listed = client.get(f"{ITEMS}?cursor={created['id'] - 1}&limit=2").json["items"]
    assert [row["tags"] for row in listed] == [["alpha", "zeta"], []]


def test_unknown_tags_are_422_naming_each_and_nothing_is_written(client: FlaskClient) -> None:
    tag(client, "known")
    response = client.post(ITEMS, json={"name": "never", "tags": ["known", "nope", "nada"]})
    assert_error(response, 422, "validation_error", "body.tags")
    messages = [d["message"] for d in response.json["error"]["details"]]
    assert messages == ["unknown tag: nada", "unknown tag: nope"]
    item(client, "never")  # the name is free: the item was not created
    patched = item(client, "keeps", tags=["known"])
    response = client.patch(f"{ITEMS}/{patched['id']}", json={"name": "renamed", "tags": ["x"]})
    assert_error(response, 422, "validation_error", "body.tags")
    assert client.get(f"{ITEMS}/{patched['id']}").json == patched


def test_patch_replaces_tags_and_without_tags_keeps_them(client: FlaskClient) -> None:
    for name in ("a", "b", "c"):
        tag(client, name)
    row = item(client, "patched", tags=["a", "b"])
    url = f"{ITEMS}/{row['id']}"
    assert client.patch(url, json={"tags": ["c", "b"]}).json["tags"] == ["b", "c"]
    assert client.patch(url, json={"description": "d"}).json["tags"] == ["b", "c"]
    assert client.get(url).json["tags"] == ["b", "c"]
    assert client.patch(url, json={"tags": []}).json["tags"] == []
    assert_error(client.patch(url, json={"tags": None}), 422, "validation_error")


def test_at_most_twenty_tags(client: FlaskClient) -> None:
    names = [f"t{i}" for i in range(21)]
    response = client.post(ITEMS, json={"name": "many", "tags": names})
    assert_error(response, 422, "validation_error", "body.tags")
    for name in names[:20]:
        tag(client, name)
    assert item(client, "twenty", tags=names[:20])["tags"] == sorted(names[:20])


def test_deleting_a_tag_removes_it_from_every_item(client: FlaskClient) -> None:
    gone = tag(client, "gone")
    tag(client, "stays")
    rows = [item(client, f"holder-{i}", tags=["gone", "stays"]) for i in range(2)]
    assert client.delete(f"{TAGS}/{gone['id']}").status_code == 204
    assert_error(client.get(f"{TAGS}/{gone['id']}"), 404, "not_found")
    for row in rows:
        assert client.get(f"{ITEMS}/{row['id']}").json["tags"] == ["stays"]


def test_list_by_tag_pages_each_tagged_item_exactly_once(client: FlaskClient) -> None:
    tag(client, "wanted")
    tag(client, "other")
    wanted = []
    for i in range(7):
        tags = ["wanted", "other"] if i % 2 == 0 else ["other"]
        row = item(client, f"filtered-{i}", tags=tags)
        if "wanted" in tags:
            wanted.append(row["id"])
    seen: list[int] = []
    url = f"{ITEMS}?tag=wanted&limit=2"
    while True:
        page = client.get(url).json
        assert all("wanted" in row["tags"] for row in page["items"])
        seen += [row["id"] for row in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{ITEMS}?tag=wanted&limit=2&cursor={page['next_cursor']}"
    assert seen == wanted


def test_list_by_an_unknown_tag_is_an_empty_page(client: FlaskClient) -> None:
    item(client, "lonely")
    assert client.get(f"{ITEMS}?tag=no-such-tag").json == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("query", ["tag=", "tag=" + "x" * (TAG_NAME_MAX + 1), "tag=a%0Ab"])
def test_bad_tag_filter_is_422(client: FlaskClient, query: str) -> None:
    assert_error(client.get(f"{ITEMS}?{query}"), 422, "validation_error", "query.tag")


def test_tags_take_the_items_scopes(protected_app: Any, bearer: Any) -> None:
    client = protected_app.test_client()
    assert_error(client.get(TAGS), 401, "unauthorized")
    read, write = bearer(scope="items:read"), bearer(scope="items:write")
    assert client.get(TAGS, headers=read).status_code == 200
    assert_error(client.post(TAGS, json={"name": "s"}, headers=read), 403, "insufficient_scope")
    created = client.post(TAGS, json={"name": "s"}, headers=write)
    assert created.status_code == 201
    url = f"{TAGS}/{created.json['id']}"
    assert_error(client.delete(url, headers=read), 403, "insufficient_scope")
    assert client.delete(url, headers=write).status_code == 204
