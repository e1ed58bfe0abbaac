"""Reading a request: who it acts for (its Scope), its JSON body, query and path ids,
each into a validated value, and the answers every resource gives (found, created,
deleted, a page). Every failure is an ApiError naming the field.

Every query a route runs through these helpers gets the request's Scope, so it reaches
only the caller's rows (service/store/owners.py): a route never passes an owner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import psycopg
from flask import Response, current_app, jsonify, request, url_for
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.fields import BIGINT_MAX, PageQuery
from service.auth import CALLER_KEY, SCOPE_WHEN_AUTH_OFF
from service.auth.scopes import ADMIN
from service.http.errors import ApiError, validation_details
from service.http.errors import not_found as not_found  # routes raise it: requests.not_found
from service.store.database import Database, get_db
from service.store.owners import ANONYMOUS, Scope
from service.store.sql import Resource

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q", bound=PageQuery)
Created = tuple[Response, int, dict[str, str]]
NoContent = tuple[str, int]
OWNER_NOT_IN_BODIES = "is set from the token when a row is created, never by a body"


def scope() -> Scope:
    """Whose rows this request reaches, and who owns what it creates: the verified token's
    (service/auth/guard.py left it in the environ), or, with access control off, the
    app's one `anonymous` scope. With access control on and no caller, a KeyError: a
    500, never another owner's rows."""
    caller = request.environ.get(CALLER_KEY)
    if caller is not None:
        return caller.scope  # type: ignore[no-any-return]
    return current_app.extensions[SCOPE_WHEN_AUTH_OFF]  # type: ignore[no-any-return]


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
        details = validation_details(exc, "body")
        for detail in details:
            if detail["field"] == "body.owner":  # no body sets or changes it
                detail["message"] = OWNER_NOT_IN_BODIES
        raise ApiError(422, "validation_error", "The body is invalid.", details) from None


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


def found(get: Callable[[psycopg.Cursor[Any], Scope, int], Any], name: str, raw: str) -> Response:
    """The row `get` finds by the id in path variable `name`, or a 404: also when it is
    another owner's, with the same body, so a caller cannot tell the two apart."""
    number = path_id(raw, name)
    row = db().read(get, scope(), number)
    if row is None:
        raise not_found(name, number)
    return jsonify(row)


def deleted(
    delete: Callable[[psycopg.Cursor[Any], Scope, int], bool], name: str, raw: str
) -> NoContent:
    """204 if `delete` removed the row with the id in path variable `name`, else a 404."""
    number = path_id(raw, name)
    if not db().write(delete, scope(), number):
        raise not_found(name, number)
    return "", 204


def created(row: Any, endpoint: str, **ids: Any) -> Created:
    """201 with the row, and its URL (`endpoint` with `ids`) as Location."""
    return jsonify(row), 201, {"Location": url_for(endpoint, **ids)}


def create(
    resource: Resource[Any], model: type[BaseModel], endpoint: str, **raw_ids: str
) -> Created:
    """Create a row of `resource` from the body (`model`), owned by the caller, or, for a
    child resource, under the parent in the path (`item_id=...`, a 404 when the caller
    does not reach it); 201 with its URL (the rule of `endpoint`) as Location."""
    ids = {name: path_id(raw, name) for name, raw in raw_ids.items()}
    row = db().write(resource.create, scope(), body(model).model_dump(), **ids)
    return created(row, endpoint, **{_id_variable(endpoint): row["id"]})


@cache
def _id_variable(endpoint: str) -> str:
    """The one path variable of the route `endpoint` (`tags.get_tag` -> `tag_id`)."""
    (variable,) = next(current_app.url_map.iter_rules(endpoint)).arguments
    return variable


def listed(key: str, model: type[Q], fetch: Callable[..., list[Any]], **raw_ids: str) -> Response:
    """A page of a list: `model` parses the query, `fetch(cursor, scope, bounds, **ids)`
    gets the rows (ordered by id), the path's ids (a child's parent: `item_id=...`)
    parsed and passed on; `{key: rows, "next_cursor"}`, where a full page has a next one
    (maybe empty)."""
    ids = {name: path_id(raw, name) for name, raw in raw_ids.items()}
    bounds = query(model)
    reach = scope()
    if bounds.owner is not None and reach.listing(bounds.owner) is None:
        raise owner_out_of_reach(reach, bounds.owner)
    rows = db().read(fetch, reach, bounds, **ids)
    next_cursor = str(rows[-1]["id"]) if len(rows) == bounds.limit else None
    return jsonify({key: rows, "next_cursor": next_cursor})


def owner_out_of_reach(reach: Scope, owner: str) -> ApiError:
    """403 for `?owner=` naming rows the caller does not reach: only `items:admin` lists
    another owner's rows. Refused rather than answered with an empty page, so a client
    that forgot the scope learns why its list is empty."""
    if reach.owner == ANONYMOUS:
        why = "with access control off, lists reach only the owners `anonymous` and `unowned`"
    else:
        why = f"only a token with the scope {ADMIN} lists another owner's rows"
    return ApiError(
        403, "insufficient_scope", f"The list cannot show the rows of `{owner}`: {why}.",
        [{"field": "query.owner", "message": f"{why}; leave it out to list your own rows"}],
    )  # fmt: skip
