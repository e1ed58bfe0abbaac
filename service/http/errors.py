"""Every error, expected or not, leaves as the same JSON shape: {"error": {code, message, details}}.

No stack trace or SQL reaches a client: unexpected exceptions are logged with the request
id and answered with a generic 500.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import psycopg
from flask import Flask, Response, current_app, jsonify
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from service.store import commits
from service.store.breaker import WRITES
from service.store.database import CircuitOpenError, DeadlineExceededError, first_line, get_db
from service.store.sql import MissingParentError
from service.store.stale import stale

log = logging.getLogger(__name__)

# Stable, documented codes for the HTTP errors Werkzeug raises on our behalf.
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
}

TIMEOUT_RETRY_AFTER = (1, 5)  # Retry-After range, in seconds, after a statement timeout


class ApiError(Exception):
    """An error the API reports on purpose."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []


def error_response(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as [{field, message}], the field a dotted path (`body.name`)."""
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in err["loc"])
        field = ".".join(p for p in (prefix, path) if p)
        message = err["msg"].removeprefix("Value error, ")
        details.append({"field": field or prefix or "body", "message": message})
    return details


def not_found(name: str, number: int) -> ApiError:
    """`name` is the path variable: `item_id` gives "Item 5 does not exist.". The same for
    a row that is another owner's: existence is not leaked."""
    noun = name.removesuffix("_id").replace("_", " ").capitalize()
    return ApiError(404, "not_found", f"{noun} {number} does not exist.")


def unique_field(constraint: str, table: str) -> str | None:
    """The column a unique constraint guards, from its name: `uq_<table>_<column>`, or
    `uq_<table>_owner_<column>` when unique per owner (the naming convention in
    service/store/models.py), so no table needs a branch here. A per-owner constraint
    clashes only with the caller's own rows, so naming the field leaks nothing."""
    prefix = f"uq_{table}_"
    if not table or not constraint.startswith(prefix):
        return None
    return constraint.removeprefix(prefix).removeprefix("owner_")


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(MissingParentError)  # a child's parent, named by its path variable
    def missing_parent(exc: MissingParentError) -> Response:
        return api_error(not_found(exc.key, exc.row_id))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        response = error_response(status, code, exc.description or exc.name)
        if status == 405 and exc.response is None:
            allowed: Any = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    # Requests run their statements on psycopg (service/store/database.py), so its errors arrive as
    # they are; the pool (a connection that cannot be opened or borrowed) and /readyz
    # raise SQLAlchemy's.
    @app.errorhandler(psycopg.IntegrityError)
    def conflict(exc: psycopg.IntegrityError) -> Response:
        # The constraint name says what clashed without leaking the SQL or the values.
        constraint = exc.diag.constraint_name or ""
        log.info("integrity error on %s", constraint or "unknown constraint")
        if field := unique_field(constraint, exc.diag.table_name or ""):
            return error_response(
                409, "conflict", f"The {field} is already taken; choose another.",
                [{"field": field, "message": "must be unique"}],
            )  # fmt: skip
        return error_response(409, "conflict", "The request conflicts with existing data.")

    @app.errorhandler(commits.CommitUnconfirmedError)
    def commit_unconfirmed(exc: commits.CommitUnconfirmedError) -> Response:
        # An ERROR: someone may have to reconcile this write (docs/runbooks.md).
        log.error("write answered commit_unconfirmed (%s): it may or may not be applied",
                  exc.reason)  # fmt: skip
        get_db(current_app).on_unconfirmed(exc.reason)
        response = error_response(503, "commit_unconfirmed", commits.MESSAGE)
        response.headers["Retry-After"] = str(timed_out_retry_after())
        return response

    @app.errorhandler(DeadlineExceededError)
    @app.errorhandler(CircuitOpenError)
    def database_not_answering(exc: Exception) -> Response:
        # The deadline's own warning, or the breaker's on opening, is already logged.
        writes_only = isinstance(exc, CircuitOpenError) and exc.side == WRITES
        message = (
            "The database is not confirming writes right now (reads work); retry shortly."
            if writes_only
            else "The database is not answering in time; retry shortly."
        )
        response = error_response(503, "database_unavailable", message)
        response.headers["Retry-After"] = str(timed_out_retry_after())
        return response

    @app.errorhandler(psycopg.OperationalError)  # also statement timeouts (QueryCanceled)
    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeoutError)
    def database_unavailable(exc: Exception) -> Response:
        log.warning("database unavailable: %s", first_line(exc))
        response = error_response(
            503, "database_unavailable", "The database is unavailable; retry shortly."
        )
        timed_out = isinstance(exc, psycopg.errors.QueryCanceled)
        response.headers["Retry-After"] = str(timed_out_retry_after() if timed_out else 2)
        return response

    @app.errorhandler(DBAPIError)
    @app.errorhandler(psycopg.Error)
    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        if _connection_lost(exc):
            return database_unavailable(exc)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Internal server error.")


def timed_out_retry_after() -> int:
    """Seconds a client should wait after a statement timeout, spread out: the clients
    that timed out together behind one lock must not all come back in the same second."""
    return random.randint(*TIMEOUT_RETRY_AFTER)  # noqa: S311 - jitter, not a secret


def _connection_lost(exc: Exception) -> bool:
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    if isinstance(exc, psycopg.Error):  # e.g. InterfaceError on a connection that broke
        # or a connection made stale (service/store/stale.py), which is discarded by now
        return stale(exc) or get_db(current_app).connection_broken()
    return False
