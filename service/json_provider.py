"""Flask's JSON (`jsonify`, `app.json`) encoded by orjson.

Every response is JSON, so encoding is per-request work: orjson writes a page of 20
items, datetimes included, in a fraction of the time the standard library needs to
format the datetimes (`isoformat()`) and encode the rest (docs/performance.md).
Datetimes come out as RFC 3339, exactly as `datetime.isoformat()` writes them. Types
neither encoder knows raise a TypeError (answered as a 500), as with Flask's own
provider: nothing is converted silently.

Request bodies are still parsed by the standard library (service/api/items.py), whose
errors for hostile input (deep nesting) are the ones the API reports.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

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
        return json.dumps(obj, default=_datetime, separators=(",", ":")).encode()


def _datetime(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
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
