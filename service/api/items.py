"""/api/v1/items: parse the request, call its queries, serialize the row. Nothing else."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import psycopg
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ValidationError

from service.api.item_schemas import BIGINT_MAX, ItemCreate, ItemUpdate, PageQuery
from service.http.errors import ApiError, validation_details
from service.store import items as queries
from service.store.database import get_db

blueprint = Blueprint("items", __name__, url_prefix="/api/v1/items")
M = TypeVar("M", bound=BaseModel)


def _cursor() -> psycopg.Cursor[Any]:
    return get_db(current_app).cursor()


def _parse_body(model: type[M]) -> M:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    try:
        data = json.loads(request.get_data(cache=False))
    except RecursionError:  # not a ValueError: the stdlib parser recurses per nesting level
        raise ApiError(400, "bad_request", "The body's JSON nests too deeply.") from None
    except ValueError:  # also UnicodeDecodeError
        raise ApiError(400, "bad_request", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(
            422, "validation_error", "The body must be a JSON object.",
            [{"field": "body", "message": "must be an object"}],
        )  # fmt: skip
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422, "validation_error", "The body is invalid.", validation_details(exc, "body")
        ) from None


def _parse_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= BIGINT_MAX:
        raise ApiError(
            422, "validation_error", "The item id is invalid.",
            [{"field": "path.item_id", "message": f"must be an integer from 1 to {BIGINT_MAX}"}],
        )  # fmt: skip
    return int(raw)


def _not_found(item_id: int) -> ApiError:
    return ApiError(404, "not_found", f"Item {item_id} does not exist.")


@blueprint.get("")
def list_items() -> Response:
    """List items, oldest first, one page at a time."""
    try:
        query = PageQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(
            422, "validation_error", "The query is invalid.", validation_details(exc, "query")
        ) from None
    rows = queries.list_items(_cursor(), after_id=query.cursor, limit=query.limit)
    next_cursor = str(rows[-1]["id"]) if len(rows) == query.limit else None
    return jsonify(items=rows, next_cursor=next_cursor)


@blueprint.post("")
def create_item() -> tuple[Response, int, dict[str, str]]:
    """Create an item."""
    body = _parse_body(ItemCreate)
    row = queries.create_item(_cursor(), name=body.name, description=body.description)
    location = url_for("items.get_item", item_id=row["id"])
    return jsonify(row), 201, {"Location": location}


@blueprint.get("/<item_id>")
def get_item(item_id: str) -> Response:
    """Get one item."""
    number = _parse_id(item_id)
    row = queries.get_item(_cursor(), item_id=number)
    if row is None:
        raise _not_found(number)
    return jsonify(row)


@blueprint.patch("/<item_id>")
def update_item(item_id: str) -> Response:
    """Change some fields of an item."""
    number = _parse_id(item_id)
    body = _parse_body(ItemUpdate)
    changes = body.model_dump(include=body.model_fields_set)
    row = queries.update_item(_cursor(), item_id=number, changes=changes)
    if row is None:
        raise _not_found(number)
    return jsonify(row)


@blueprint.delete("/<item_id>")
def delete_item(item_id: str) -> tuple[str, int]:
    """Delete an item."""
    number = _parse_id(item_id)
    if not queries.delete_item(_cursor(), item_id=number):
        raise _not_found(number)
    return "", 204
