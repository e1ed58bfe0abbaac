"""JSON logs, one object per line on stdout, with the request id on every record.

The same formatter serves the app, SQLAlchemy and gunicorn's error log, and the access
log writes the same shape of line (service/runtime/gunicorn_conf.py), so every line a pod prints
parses as JSON. All of them reach stdout through `print_line`, under one lock, so lines
written by a gthread worker's threads never interleave.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import logging.config
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# The request's W3C trace id: its span's when tracing is on (service/telemetry/tracing.py),
# else the one of a valid incoming `traceparent` header; and its span id (tracing only).
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
span_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("span_id", default=None)
# Where the middleware and the tracing leave them for gunicorn's access log, which is
# handed the same WSGI environ (service/runtime/gunicorn_conf.py); and the trace id again
# when the trace is sampled (recorded), for the latency histogram's exemplar.
TRACE_ID_ENVIRON_KEY = "service.trace_id"
SPAN_ID_ENVIRON_KEY = "service.span_id"
SAMPLED_TRACE_ID_ENVIRON_KEY = "service.sampled_trace_id"

# A sane incoming id: short and plain (a UUID, a hex or base64url token), nothing a log
# query or a URL could read as structure (`/`, `=`, `:`, `@`, `+`).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# W3C Trace Context `traceparent`: version-trace_id-parent_id-flags, lower-case hex. A
# version after 00 may append fields ("-..."); version ff is invalid.
_TRACEPARENT = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?", re.DOTALL
)
_ZERO_TRACE_ID, _ZERO_PARENT_ID = "0" * 32, "0" * 16

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}


def accept_or_make_request_id(incoming: str | None) -> str:
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)  # 128 random bits, as a UUID4 has, at a fifth of its cost


def client_address(environ: Mapping[str, Any], trusted_proxies: int) -> str | None:
    """The client's address: the peer's, or the one `trusted_proxies` proxies vouch for.

    Each proxy appends the address it received the request from to X-Forwarded-For, so
    with N trusted proxies in front the client is the N-th entry from the right; whatever
    is further left was sent by the client itself and may be forged.
    """
    peer = environ.get("REMOTE_ADDR")
    forwarded = environ.get("HTTP_X_FORWARDED_FOR") if trusted_proxies else None
    if not forwarded:
        return peer
    hops = forwarded.split(",")
    return hops[-min(trusted_proxies, len(hops))].strip() or peer


def trace_id_from(traceparent: str) -> str | None:
    """The trace id of a valid W3C `traceparent` header, else None (the header is ignored,
    as the spec says a receiver must do with one it cannot parse)."""
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    version, trace_id, parent_id, more = match.groups()
    if version == "ff" or (version == "00" and more is not None):
        return None
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_PARENT_ID:
        return None
    return trace_id


class RequestIdFilter(logging.Filter):
    """Puts the request id, and the trace and span ids when the request has them, on every
    record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        trace_id = trace_id_var.get()
        if trace_id is not None and not hasattr(record, "trace_id"):
            record.trace_id = trace_id
            span_id = span_id_var.get()
            if span_id is not None:
                record.span_id = span_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRS and not key.startswith("_")
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return log_line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "request_id", None),
            fields,
        )


def log_line(
    created: float,
    level: str,
    logger: str,
    message: str,
    request_id: str | None,
    fields: dict[str, Any],
) -> str:
    """The line every log line is: time, level, logger, message, the request id if there is
    one, then `fields`. The formatter and gunicorn's access log (which skips `logging`)
    both write it."""
    entry: dict[str, Any] = {
        "time": _utc_iso(created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    if request_id:
        entry["request_id"] = request_id
    entry |= fields
    return json_line(entry)


class StdoutHandler(logging.Handler):
    """Each record, formatted, as one line on stdout (through `print_line`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print_line(self.format(record))
        except Exception:  # noqa: BLE001 - logging reports on stderr, never raises to the caller
            self.handleError(record)


def json_line(entry: dict[str, Any]) -> str:
    """`entry` as one line of JSON; a value JSON has no type for is written as its str()."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except TypeError:
        # orjson refuses a lone surrogate, a key that is not a str and an int beyond 64
        # bits; the standard library writes them (escaped, so the line is valid UTF-8).
        return json.dumps(entry, default=str)


# Re-entrant, as logging's handler locks are: a signal handler that logs while its
# thread is inside print_line must not wait for itself.
_stdout_lock = threading.RLock()


def print_line(line: str) -> None:
    """Write one line to stdout, whole, and flush it: the container runtime reads a pipe."""
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _new_stdout_lock() -> None:
    # A fork copies the lock as it is; should another thread have held it, the child
    # would wait forever. gunicorn's master is single-threaded, but nothing enforces that.
    global _stdout_lock
    _stdout_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_stdout_lock)


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _utc_iso(created: float) -> str:
    """A `time.time()` as RFC 3339 UTC with milliseconds, as every log line carries it."""
    # Formatting the date and time once per second, not once per line (every request logs).
    return f"{_utc_second(int(created))}.{int(created % 1 * 1000):03d}Z"


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for the whole process; gunicorn takes it as `logconfig_dict`."""
    handler = {"()": StdoutHandler, "formatter": "json", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {"stdout": handler},
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # gunicorn attaches its own handlers unless told otherwise; route both to ours.
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": level, "handlers": ["stdout"], "propagate": False},
            # SQL statements only when asked for with LOG_LEVEL=DEBUG.
            "sqlalchemy.engine": {"level": "WARNING" if level != "DEBUG" else "INFO"},
            "werkzeug": {"level": level},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
