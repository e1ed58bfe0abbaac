"""Responses are encoded by orjson, with the standard library as the fallback for strings
orjson refuses; both write datetimes as isoformat() does."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import Enum
from uuid import UUID

import orjson
import pytest

from service.http.json_provider import encode

MOMENTS = [
    datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC),  # isoformat() drops zero microseconds
    datetime(2026, 11, 26, 12, 0, 0, 500000, tzinfo=timezone(timedelta(hours=-5))),
]


@pytest.mark.parametrize("moment", MOMENTS)
def test_datetimes_are_written_as_isoformat_writes_them(moment: datetime) -> None:
    assert json.loads(encode({"at": moment})) == {"at": moment.isoformat()}


def test_a_lone_surrogate_falls_back_to_an_escaped_string() -> None:
    """orjson refuses it; the standard library's parser accepts one from a client."""
    body = encode({"field": "body.\ud800", "at": MOMENTS[0]})
    assert b"\\ud800" in body
    assert json.loads(body) == {"field": "body.\ud800", "at": MOMENTS[0].isoformat()}


def test_unknown_types_are_an_error_not_a_silent_string() -> None:
    with pytest.raises(TypeError):
        encode({"value": object()})
    with pytest.raises(TypeError):
        encode({"value": object(), "bad": "\ud800"})  # the fallback refuses them too


def test_the_fallback_writes_what_orjson_writes() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    class Colour(Enum):
        RED = "red"

    value = {
        "day": date(2026, 11, 26), "at": time(12, 30), "id": UUID(int=7),
        "colour": Colour.RED, "point": Point(1), "moment": MOMENTS[1],
    }  # fmt: skip
    assert json.loads(encode({**value, "bad": "\ud800"})) == {
        **json.loads(orjson.dumps(value)),
        "bad": "\ud800",
    }
