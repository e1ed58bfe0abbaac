"""Probes: /livez says the process serves; /readyz says it can serve real requests."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.store.database import get_db
from service.store.schema_revision import check_schema

blueprint = Blueprint("health", __name__)
log = logging.getLogger(__name__)

READYZ_STATEMENT_TIMEOUT_MS = 1000


@blueprint.get("/livez")
def livez() -> Response:
    """Alive. Never touches the database, so a database outage restarts no pod."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready: the database answers quickly and its schema is at or ahead of this code's.

    Not while this worker's circuit breaker says the database is not answering: the pod
    then leaves the Service at once. A breaker open for writes only keeps it ready,
    since reads still work (service/store/breaker.py)."""
    db = get_db(current_app)
    if db.breaker.reads_open:
        return jsonify(status="unavailable", reason="database not answering"), 503
    try:
        with db.connect() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {READYZ_STATEMENT_TIMEOUT_MS}"))
            state = check_schema(connection)
    except SQLAlchemyError as exc:
        log.warning("not ready: database unreachable: %s", type(exc).__name__)
        return jsonify(status="unavailable", reason="database unreachable"), 503
    body = {
        "status": "ok" if state.ready else "unavailable",
        "reason": state.reason,
        "schema": {"database": state.database_revision, "code": state.code_revision},
    }
    return jsonify(body), 200 if state.ready else 503
