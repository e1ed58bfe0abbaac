"""/api/v1/items: parse the request, call its queries, return the rows. Nothing else."""

from __future__ import annotations

from flask import Response, jsonify

from service.api import requests
from service.api.item_schemas import Item, ItemCreate, ItemPage, ItemPageQuery, ItemUpdate
from service.api.operations import ApiBlueprint
from service.http.errors import error_response
from service.store import items as queries
from service.store.tags import UnknownTagsError

blueprint = ApiBlueprint("items", __name__, url_prefix="/api/v1/items")


@blueprint.errorhandler(UnknownTagsError)  # a handler, not a try block: free when all is well
def unknown_tags(exc: UnknownTagsError) -> Response:
    return error_response(
        422, "validation_error", "Some tags do not exist; create them first.",
        [{"field": "body.tags", "message": f"unknown tag: {name}"} for name in exc.names],
    )  # fmt: skip


@blueprint.operation("GET", "", query=ItemPageQuery, response=ItemPage)
def list_items() -> Response:
    """List items, oldest first, one page at a time; `tag` keeps those with that tag."""
    return requests.listed("items", ItemPageQuery, queries.list_items)


@blueprint.operation(
    "POST", "", body=ItemCreate, response=Item, status=201,
    errors={409: "You have an item with this name."},
)  # fmt: skip
def create_item() -> requests.Created:
    """Create an item."""
    body = requests.body(ItemCreate)
    row = requests.db().write(
        queries.create_item, requests.scope(),
        name=body.name, description=body.description, tags=body.tags,
    )  # fmt: skip
    return requests.created(row, "items.get_item", item_id=row["id"])


@blueprint.operation("GET", "/<item_id>", response=Item)
def get_item(item_id: str) -> Response:
    """Get one item."""
    return requests.found(queries.ITEMS.get, "item_id", item_id)


@blueprint.operation(
    "PATCH", "/<item_id>", body=ItemUpdate, response=Item,
    errors={409: "You have another item with this name."},
)  # fmt: skip
def update_item(item_id: str) -> Response:
    """Change some fields of an item; `tags` replaces its tags."""
    number = requests.path_id(item_id, "item_id")
    body = requests.body(ItemUpdate)
    changes = body.model_dump(include=body.model_fields_set - {"tags"})
    row = requests.db().write(
        queries.update_item, requests.scope(), item_id=number, changes=changes, tags=body.tags
    )
    if row is None:
        raise requests.not_found("item_id", number)
    return jsonify(row)


@blueprint.operation("DELETE", "/<item_id>", response=None, status=204)
def delete_item(item_id: str) -> requests.NoContent:
    """Delete an item."""
    return requests.deleted(queries.ITEMS.delete, "item_id", item_id)
