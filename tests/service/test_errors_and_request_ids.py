"""Server errors are generic JSON with nothing internal; request ids are echoed or replaced."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.store.database import get_db


def test_statement_timeouts_are_503_with_a_spread_out_retry_after(app: Flask) -> None:
    """Clients that timed out together behind one lock must not all retry in the same
    second: each 503 says a Retry-After between 1 and 5 s, drawn at random."""

    @app.get("/slow")
    def slow() -> str:
        connection = get_db(app).connection()
        connection.execute("SET LOCAL statement_timeout = 10")  # undone with the savepoint
        connection.execute("SELECT pg_sleep(1)")
        return "unreachable"

    responses = [app.test_client().get("/slow") for _ in range(20)]
    assert {r.status_code for r in responses} == {503}
    assert {r.json["error"]["code"] for r in responses} == {"database_unavailable"}  # type: ignore[index]
    waits = [int(r.headers["Retry-After"]) for r in responses]
    assert all(1 <= wait <= 5 for wait in waits), waits
    assert len(set(waits)) >= 3, waits  # all 20 within two values: p ~ 1e-7 if uniform


def test_unexpected_error_is_generic_500_and_logged_with_request_id(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    def boom() -> str:
        get_db(app).connection().execute("SELECT * FROM no_such_table")
        return "unreachable"

    from service.telemetry.logs import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())  # as the stdout handler has it
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal_error", "message": "Internal server error.", "details": []}
    }
    body = response.get_data(as_text=True)
    assert "no_such_table" not in body and "Traceback" not in body and "SELECT" not in body
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert record.request_id == "req-500"  # type: ignore[attr-defined]
    assert record.exc_info is not None


@pytest.mark.parametrize(
    "incoming", ["abc-123_trace.1", "0b5a7c2e-6f1d-4c4e-9f0e-2d9a1b3c4d5e", "x" * 64]
)
def test_sane_request_id_is_echoed(client: FlaskClient, incoming: str) -> None:
    response = client.get("/livez", headers={"X-Request-ID": incoming})
    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["x" * 10_000, "x" * 65, "bad\x01id", "with space", "", "é-unicode", "a/../b", "k=v",
     "user@host", "a:b", "a+b"],
)  # fmt: skip
def test_insane_request_id_is_replaced(client: FlaskClient, incoming: str) -> None:
    response = client.get("/livez", headers={"X-Request-ID": incoming})
    returned = response.headers["X-Request-ID"]
    assert returned != incoming and len(returned) == 32 and returned.isalnum()


def test_generated_ids_differ(client: FlaskClient) -> None:
    ids = {client.get("/livez").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_json_formatter_emits_one_object_per_line(caplog: pytest.LogCaptureFixture) -> None:
    from service.telemetry.logs import JsonFormatter, RequestIdFilter, request_id_var

    token = request_id_var.set("rid-1")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("w",), None)
        RequestIdFilter().filter(record)
        record.extra_field = {"k": 1}
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "hello w" and entry["level"] == "INFO"
    assert entry["request_id"] == "rid-1" and entry["extra_field"] == {"k": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("caf\u00e9 \u2603", "caf\u00e9 \u2603"),  # non-ASCII kept as it is
        ("lone \udc80 surrogate", "lone \udc80 surrogate"),  # orjson refuses; escaped
        (2**70, 2**70),  # beyond 64 bits: orjson refuses
        ({1: "int key"}, {"1": "int key"}),  # orjson refuses non-str keys
        (Path("/x"), "/x"),  # no JSON type: its str()
    ],
)
def test_a_log_line_is_one_valid_json_object_whatever_the_values(
    value: object, expected: object
) -> None:
    from service.telemetry.logs import json_line

    line = json_line({"message": "m", "value": value})
    assert "\n" not in line
    line.encode("utf-8")  # writable to stdout: a lone surrogate would raise here
    assert json.loads(line)["value"] == expected


def test_a_process_forked_while_another_thread_prints_can_print() -> None:
    """A fork copies the stdout lock as it is: held by a thread the child does not have,
    it would block the child's first log line forever."""
    from service.telemetry import logs

    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with logs._stdout_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: print, then report how it went in the exit code
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the child exits right after
            logs.print_line("from the child")
            os._exit(0)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child waited forever for the stdout lock")
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize(
    ("trusted", "forwarded", "logged"),
    [
        (0, "203.0.113.7", "10.0.0.9"),  # no proxy trusted: the header is the client's word
        (1, "203.0.113.7", "203.0.113.7"),  # the ingress appended its peer
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client's own entry is ignored
        (2, "6.6.6.6, 203.0.113.7, 10.1.1.1", "203.0.113.7"),  # load balancer + ingress
        (2, "203.0.113.7", "203.0.113.7"),  # fewer hops than proxies: the first
        (1, None, "10.0.0.9"),
    ],
)
def test_access_log_takes_the_client_from_x_forwarded_for_only_through_trusted_proxies(
    trusted: int, forwarded: str | None, logged: str
) -> None:
    from service.telemetry.logs import client_address

    environ = {"REMOTE_ADDR": "10.0.0.9"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_address(environ, trusted) == logged


def test_access_lines_have_the_shape_of_every_log_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from datetime import timedelta

    from gunicorn.config import Config

    monkeypatch.setenv("DATABASE_URL", database_url)  # gunicorn_conf reads the settings
    monkeypatch.setenv("APP_ENV", "dev")  # no issuer needed to import it
    from service.runtime.gunicorn_conf import JsonAccessLogger

    access = JsonAccessLogger(Config()).access  # gunicorn's default: requests at INFO

    class Response:
        status_code = 201
        sent = 42
        headers = (("Content-Type", "application/json"), ("X-Request-ID", "rid-7"))

    def environ(path: str) -> dict[str, str]:
        return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "REMOTE_ADDR": "10.0.0.9",
                "HTTP_USER_AGENT": "curl/8"}  # fmt: skip

    capsys.readouterr()
    access(Response, None, environ("/api/v1/items"), timedelta(milliseconds=12.5))
    access(Response, None, environ("/livez"), timedelta(milliseconds=1))  # probes: DEBUG
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "level": "INFO", "logger": "gunicorn.access", "message": "POST /api/v1/items 201",
        "request_id": "rid-7", "method": "POST", "path": "/api/v1/items", "status": 201,
        "duration_ms": 12.5, "bytes": 42, "remote_addr": "10.0.0.9", "user_agent": "curl/8",
        "sub": None,
    }  # fmt: skip

    def broken_stdout(line: str) -> None:
        raise BrokenPipeError("stdout closed")

    monkeypatch.setattr("service.runtime.gunicorn_conf.print_line", broken_stdout)
    access(Response, None, environ("/api/v1/items"), timedelta(milliseconds=1))  # no raise


def test_made_up_methods_share_one_metrics_label(client: FlaskClient) -> None:
    """Any upper-case token is a method to gunicorn; labels must not grow with them."""
    for method in ("ZZZA", "ZZZB", "QWERTY"):
        assert client.open("/nowhere", method=method).status_code in (404, 405)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="OTHER"' in text
    assert "ZZZA" not in text and "QWERTY" not in text
