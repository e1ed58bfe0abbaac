"""/api/v1/items: every endpoint's success and error paths, against real PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.store.models import DESCRIPTION_MAX, NAME_MAX
from tests.conftest import assert_error, create_row

ITEMS = "/api/v1/items"


def create(client: FlaskClient, **body: Any) -> dict[str, Any]:
    return create_row(client, ITEMS, **body)


def test_create_returns_the_item_with_server_set_fields(client: FlaskClient) -> None:
    response = client.post(ITEMS, json={"name": "first", "description": "one\ntwo"})
    assert response.status_code == 201
    item = response.json
    assert item["name"] == "first" and item["description"] == "one\ntwo"
    assert isinstance(item["id"], int) and item["id"] >= 1
    assert item["created_at"] == item["updated_at"]
    assert response.headers["Location"] == f"{ITEMS}/{item['id']}"


def test_timestamps_are_rfc3339_with_an_offset(client: FlaskClient) -> None:
    item = create(client, name="when")
    for field in ("created_at", "updated_at"):
        parsed = datetime.fromisoformat(item[field])
        assert parsed.utcoffset() is not None, item[field]
        assert item[field] == parsed.isoformat()  # what isoformat() writes, to the digit


def test_get_returns_what_was_created(client: FlaskClient) -> None:
    item = create(client, name="get-me")
    response = client.get(f"{ITEMS}/{item['id']}")
    assert response.status_code == 200
    assert response.json == item


def test_patch_changes_only_given_fields_and_bumps_updated_at(client: FlaskClient) -> None:
    item = create(client, name="before", description="keep")
    response = client.patch(f"{ITEMS}/{item['id']}", json={"name": "after"})
    assert response.status_code == 200
    assert response.json["name"] == "after" and response.json["description"] == "keep"
    assert response.json["created_at"] == item["created_at"]
    assert response.json["updated_at"] >= item["updated_at"]


def test_patch_can_clear_the_description(client: FlaskClient) -> None:
    item = create(client, name="clear", description="text")
    response = client.patch(f"{ITEMS}/{item['id']}", json={"description": None})
    assert response.status_code == 200 and response.json["description"] is None


def test_delete_removes_the_item(client: FlaskClient) -> None:
    item = create(client, name="gone")
    assert client.delete(f"{ITEMS}/{item['id']}").status_code == 204
    assert_error(client.get(f"{ITEMS}/{item['id']}"), 404, "not_found")
    assert_error(client.delete(f"{ITEMS}/{item['id']}"), 404, "not_found")


def test_list_pages_through_everything_in_order(client: FlaskClient) -> None:
    created = [create(client, name=f"page-{i}")["id"] for i in range(5)]
    seen: list[int] = []
    url = f"{ITEMS}?limit=2"
    while True:
        page = client.get(url).json
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{ITEMS}?limit=2&cursor={page['next_cursor']}"
    assert [i for i in seen if i in created] == created
    assert seen == sorted(seen)


def test_list_defaults_to_twenty(client: FlaskClient) -> None:
    for i in range(21):
        create(client, name=f"default-{i}")
    page = client.get(ITEMS).json
    assert len(page["items"]) == 20 and page["next_cursor"] is not None


def test_missing_item_is_404(client: FlaskClient) -> None:
    assert_error(client.get(f"{ITEMS}/999999999"), 404, "not_found")
    assert_error(client.patch(f"{ITEMS}/999999999", json={"name": "x"}), 404, "not_found")


def test_duplicate_name_is_409(client: FlaskClient) -> None:
    create(client, name="unique")
    assert_error(client.post(ITEMS, json={"name": "unique"}), 409, "conflict", "name")
    other = create(client, name="other")
    assert_error(
        client.patch(f"{ITEMS}/{other['id']}", json={"name": "unique"}), 409, "conflict", "name"
    )


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(ITEMS, data='{"name": ', content_type="application/json")
    assert_error(response, 400, "bad_request")


def test_non_json_content_type_is_415(client: FlaskClient) -> None:
    assert_error(client.post(ITEMS, data="name=x"), 415, "unsupported_media_type")
    response = client.post(ITEMS, data='{"name": "x"}', content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.name"),
        ({"name": 5}, "body.name"),
        ({"name": None}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "x" * (NAME_MAX + 1)}, "body.name"),
        ({"name": "ok", "description": "d" * (DESCRIPTION_MAX + 1)}, "body.description"),
        ({"name": "ok", "description": 3}, "body.description"),
        ({"name": "ok", "colour": "red"}, "body.colour"),
        ({"name": "tab\there"}, "body.name"),
        ({"name": "nul\x00byte"}, "body.name"),
        ({"name": "ok", "description": "nul\x00"}, "body.description"),
        ({"name": "lone \ud800 surrogate"}, "body.name"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    assert_error(client.post(ITEMS, json=body), 422, "validation_error", field)


@pytest.mark.parametrize("body", ["[1, 2]", '"name"', "3", "null"])
def test_non_object_body_is_rejected(client: FlaskClient, body: str) -> None:
    response = client.post(ITEMS, data=body, content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.json["error"]["code"] in ("bad_request", "validation_error")


def test_empty_patch_is_422(client: FlaskClient) -> None:
    item = create(client, name="patch-empty")
    assert_error(client.patch(f"{ITEMS}/{item['id']}", json={}), 422, "validation_error")
    response = client.patch(f"{ITEMS}/{item['id']}", json={"name": None})
    assert_error(response, 422, "validation_error")


# "\u0661" is ARABIC-INDIC DIGIT ONE: str.isdigit() says yes, the id parser must say no.
@pytest.mark.parametrize("item_id", ["abc", "-1", "0", "1.5", "99999999999999999999", "\u0661"])
def test_non_integer_or_out_of_range_id_is_422(client: FlaskClient, item_id: str) -> None:
    assert_error(client.get(f"{ITEMS}/{item_id}"), 422, "validation_error", "path.item_id")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "query.limit"),
        ("limit=-5", "query.limit"),
        ("limit=101", "query.limit"),
        ("limit=99999999999999999999999", "query.limit"),
        ("limit=ten", "query.limit"),
        ("cursor=-1", "query.cursor"),
        ("cursor=abc", "query.cursor"),
        ("colour=red", "query.colour"),
    ],
)
def test_bad_page_query_is_422(client: FlaskClient, query: str, field: str) -> None:
    assert_error(client.get(f"{ITEMS}?{query}"), 422, "validation_error", field)


def test_unicode_round_trips(client: FlaskClient) -> None:
    name = "שלום \u202e RTL 🚀 ñ"
    item = create(client, name=name, description="Ω\r\n\t end")
    assert client.get(f"{ITEMS}/{item['id']}").json["name"] == name


def test_sql_like_input_is_just_text(client: FlaskClient) -> None:
    name = "x'); DROP TABLE items; --"
    item = create(client, name=name)
    assert client.get(f"{ITEMS}/{item['id']}").json["name"] == name
    assert client.get(ITEMS).status_code == 200


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    response = client.put(f"{ITEMS}/1", json={"name": "x"})
    assert_error(response, 405, "method_not_allowed")
    assert "PATCH" in response.headers["Allow"]


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")


def test_body_over_the_limit_is_413(make_app: Any) -> None:
    client = make_app(max_body_bytes=2048).test_client()
    response = client.post(ITEMS, json={"name": "big", "description": "x" * 4096})
    assert_error(response, 413, "payload_too_large")
