"""Flask's JSON (`jsonify`, `app.json`) encoded by orjson.

Every response is JSON, so encoding is per-request work: orjson writes a page of 20
items, datetimes included, in a fraction of the time the standard library needs to
format the datetimes (`isoformat()`) and encode the rest (docs/performance.md).
orjson writes str, int, float, bool, None, dicts, lists and tuples, and also dates and
times (as `isoformat()` writes them: RFC 3339 for datetimes), UUIDs, enums and
dataclasses; anything else (Decimal, say, which Flask's own provider wrote as a string)
raises a TypeError, answered as a 500. The options are fixed: compact, UTF-8; `dumps`
ignores Flask's keyword arguments.

Request bodies are still parsed by the standard library (service/api/items.py), whose
errors for hostile input (deep nesting) are the ones the API reports.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, time
from enum import Enum
from typing import Any, cast
from uuid import UUID

import orjson
from flask import Response
from flask.json.provider import JSONProvider


def encode(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        # orjson refuses a str that is not valid Unicode (a lone surrogate). The standard
        # library's parser accepts one from a client (`"\ud800"`), and an error message
        # may name it, e.g. as an unknown field; the standard library writes it escaped.
        return json.dumps(obj, default=_as_orjson_writes_it, separators=(",", ":")).encode()


def _as_orjson_writes_it(value: object) -> Any:
    """The types orjson writes beyond the standard library's, written the same way."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class OrjsonProvider(JSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return encode(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        # Parsing stays with the standard library, whatever the caller (see above).
        return json.loads(s, **kwargs)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        # The encoded bytes go straight into the response: no str round trip.
        body = encode(self._prepare_response_obj(args, kwargs))
        response_class = cast("type[Response]", self._app.response_class)
        return response_class(body, mimetype="application/json")
