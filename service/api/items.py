"""/api/v1/items: parse the request, call its queries, return the rows. Nothing else."""

from __future__ import annotations

from flask import Response, jsonify, url_for

from service.api import requests
from service.api.fields import PageQuery
from service.api.item_schemas import Item, ItemCreate, ItemPage, ItemUpdate
from service.api.operations import ApiBlueprint
from service.store import items as queries

blueprint = ApiBlueprint("items", __name__, url_prefix="/api/v1/items")
NO_SUCH_ITEM = {404: "No such item."}


@blueprint.operation("GET", "", query=PageQuery, response=ItemPage)
def list_items() -> Response:
    """List items, oldest first, one page at a time."""
    query = requests.query(PageQuery)
    rows = queries.list_items(requests.cursor(), after_id=query.cursor, limit=query.limit)
    return jsonify(requests.page("items", rows, query.limit))


@blueprint.operation(
    "POST", "", body=ItemCreate, response=Item, status=201,
    errors={409: "An item with this name exists."},
)  # fmt: skip
def create_item() -> tuple[Response, int, dict[str, str]]:
    """Create an item."""
    body = requests.body(ItemCreate)
    row = queries.create_item(requests.cursor(), name=body.name, description=body.description)
    return jsonify(row), 201, {"Location": url_for("items.get_item", item_id=row["id"])}


@blueprint.operation("GET", "/<item_id>", response=Item, errors=NO_SUCH_ITEM)
def get_item(item_id: str) -> Response:
    """Get one item."""
    number = requests.path_id(item_id, "item_id")
    row = queries.get_item(requests.cursor(), item_id=number)
    if row is None:
        raise requests.not_found("Item", number)
    return jsonify(row)


@blueprint.operation(
    "PATCH", "/<item_id>", body=ItemUpdate, response=Item,
    errors={**NO_SUCH_ITEM, 409: "Another item has this name."},
)  # fmt: skip
def update_item(item_id: str) -> Response:
    """Change some fields of an item."""
    number = requests.path_id(item_id, "item_id")
    body = requests.body(ItemUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    row = queries.update_item(requests.cursor(), item_id=number, changes=changes)
    if row is None:
        raise requests.not_found("Item", number)
    return jsonify(row)


@blueprint.operation("DELETE", "/<item_id>", response=None, status=204, errors=NO_SUCH_ITEM)
def delete_item(item_id: str) -> tuple[str, int]:
    """Delete an item."""
    number = requests.path_id(item_id, "item_id")
    if not queries.delete_item(requests.cursor(), item_id=number):
        raise requests.not_found("Item", number)
    return "", 204
