"""W3C `traceparent`: a valid one's trace id goes into the access line and the request's log
records; an invalid one is ignored; without one, nothing is added."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest
from flask import Flask

from service.store.database import get_db
from service.telemetry.logs import RequestIdFilter, trace_id_from
from tools.service_process import running_service

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
VALID = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "header",
    [
        VALID,
        f"00-{TRACE_ID}-00f067aa0ba902b7-00",  # not sampled: still the request's trace
        f"01-{TRACE_ID}-00f067aa0ba902b7-01-future-field",  # later versions may add fields
        f"cc-{TRACE_ID}-00f067aa0ba902b7-09",
    ],
)
def test_valid_traceparent_gives_its_trace_id(header: str) -> None:
    assert trace_id_from(header) == TRACE_ID


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        VALID.upper(),  # hex is lower case
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is forbidden
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01",  # short trace id
        f"00-{TRACE_ID}-00f067aa0ba902b7-1",  # short flags
        f"00_{TRACE_ID}_00f067aa0ba902b7_01",
        f"{VALID},{VALID}",  # two headers, joined
        f" {VALID}",
    ],
)
def test_invalid_traceparent_is_ignored(header: str) -> None:
    assert trace_id_from(header) is None


def test_error_records_carry_the_trace_id_only_when_one_came(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom-traced")
    def boom() -> str:
        get_db(app).connection().execute("SELECT * FROM no_such_table")
        return "unreachable"

    caplog.handler.addFilter(RequestIdFilter())  # as the stdout handler has it
    client = app.test_client()
    for headers in ({"traceparent": VALID}, {}, {"traceparent": VALID.upper()}):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert client.get("/boom-traced", headers=headers).status_code == 500
        record = next(r for r in caplog.records if r.levelno == logging.ERROR)
        expected = TRACE_ID if headers.get("traceparent") == VALID else None
        assert getattr(record, "trace_id", None) == expected, headers
        assert record.request_id  # type: ignore[attr-defined]


@pytest.mark.slow
def test_access_lines_of_the_real_server(database_url: str) -> None:
    """gunicorn's access logger sees the trace id the app took (they share the environ)."""
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1", "LOG_LEVEL": "INFO"}
    with running_service(env) as service:
        for request_id, traceparent in (("with-trace", VALID), ("no-trace", None),
                                        ("bad-trace", "00-nothex-01")):  # fmt: skip
            headers = {"X-Request-ID": request_id}
            if traceparent:
                headers["traceparent"] = traceparent
            request = urllib.request.Request(f"{service.base_url}/nowhere", headers=headers)
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(request, timeout=5)
    access = {
        entry["request_id"]: entry
        for entry in map(json.loads, filter(lambda line: line.startswith("{"), service.lines))
        if entry.get("logger") == "gunicorn.access"
    }
    assert access["with-trace"]["trace_id"] == TRACE_ID
    assert "trace_id" not in access["no-trace"]
    assert "trace_id" not in access["bad-trace"]
