"""Reading a request: its JSON body, query and path ids, each into a validated value, and
the page envelope of a list. Every failure is an ApiError naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from flask import Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.fields import BIGINT_MAX, PageQuery
from service.http.errors import ApiError, validation_details
from service.store.database import Database, get_db

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound=PageQuery)


def db() -> Database:
    """Run queries with `db().read(query, ...)` or `db().write(query, ...)`: on the
    request's cursor (service/store/database.py says why not a Session), once more on a
    fresh connection if the kept one was stale and repeating is safe."""
    return get_db(current_app)


def body(model: type[M]) -> M:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        )
    data_bytes = request.get_data(cache=False)
    if len(data_bytes) >= (current_app.config["MAX_CONTENT_LENGTH"] or len(data_bytes) + 1):
        _refuse_a_longer_stream()
    try:
        data = json.loads(data_bytes)
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


def _refuse_a_longer_stream() -> None:
    """A chunked body (no Content-Length) is read only up to MAX_BODY_BYTES: if there is
    more, the body is too large, not malformed (413, as with a Content-Length)."""
    if request.content_length is None and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge


def query(model: type[M]) -> M:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(
            422, "validation_error", "The query is invalid.", validation_details(exc, "query")
        ) from None


def path_id(raw: str, name: str) -> int:
    """A path segment as a positive bigint; `name` is the rule's variable (`item_id`)."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= BIGINT_MAX:
        raise ApiError(
            422, "validation_error", f"The {name.replace('_', ' ')} is invalid.",
            [{"field": f"path.{name}", "message": f"must be an integer from 1 to {BIGINT_MAX}"}],
        )  # fmt: skip
    return int(raw)


def not_found(name: str, number: int) -> ApiError:
    """`name` is the path variable: `item_id` gives "Item 5 does not exist."."""
    noun = name.removesuffix("_id").replace("_", " ").capitalize()
    return ApiError(404, "not_found", f"{noun} {number} does not exist.")


def found(get: Callable[[psycopg.Cursor[Any], int], Any], name: str, raw: str) -> Response:
    """The row `get` finds by the id in path variable `name`, or a 404."""
    number = path_id(raw, name)
    row = db().read(get, number)
    if row is None:
        raise not_found(name, number)
    return jsonify(row)


def deleted(
    delete: Callable[[psycopg.Cursor[Any], int], bool], name: str, raw: str
) -> tuple[str, int]:
    """204 if `delete` removed the row with the id in path variable `name`, else a 404."""
    number = path_id(raw, name)
    if not db().write(delete, number):
        raise not_found(name, number)
    return "", 204


def created(row: Any, endpoint: str, **ids: Any) -> tuple[Response, int, dict[str, str]]:
    """201 with the row, and its URL (`endpoint` with `ids`) as Location."""
    return jsonify(row), 201, {"Location": url_for(endpoint, **ids)}


def listed(
    key: str, model: type[Q], fetch: Callable[[psycopg.Cursor[Any], Q], list[Any]]
) -> Response:
    """A page of a list: `model` parses the query, `fetch` gets the rows (ordered by id);
    `{key: rows, "next_cursor"}`, where a full page has a next one (maybe empty)."""
    bounds = query(model)
    rows = db().read(fetch, bounds)
    next_cursor = str(rows[-1]["id"]) if len(rows) == bounds.limit else None
    return jsonify({key: rows, "next_cursor": next_cursor})
