"""Limits and hostile clients against the real server: clear JSON errors, no worker lost."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import requests

from tools.service_process import ServiceProcess, running_service

pytestmark = pytest.mark.slow

ITEMS = "/api/v1/items"


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[ServiceProcess]:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", "GUNICORN_TIMEOUT": "4",
           "DB_STATEMENT_TIMEOUT_MS": "500", "LOG_LEVEL": "WARNING"}  # fmt: skip
    with running_service(env) as service:
        yield service


def error_code(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json")
    code: str = response.json()["error"]["code"]
    return code


@pytest.mark.parametrize("depth", [1_000, 20_000])
def test_deeply_nested_json_is_a_clean_400(server: ServiceProcess, depth: int) -> None:
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    response = requests.post(f"{server.base_url}{ITEMS}", data=body, timeout=10,
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code in (400, 422)
    assert error_code(response) in ("bad_request", "validation_error")


def test_ten_megabyte_body_is_413_and_the_worker_survives(server: ServiceProcess) -> None:
    body = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    started = time.monotonic()
    response = requests.post(f"{server.base_url}{ITEMS}", data=body, timeout=30,
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    assert time.monotonic() - started < 10
    for _ in range(10):
        assert requests.get(f"{server.base_url}/livez", timeout=5).status_code == 200


def test_chunked_body_over_the_limit_is_413_not_invalid_json(server: ServiceProcess) -> None:
    """Without Content-Length the limit cuts the stream short; before, the cut body was
    parsed and answered 400 "not valid JSON"."""

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 8192  # 160 KiB: above MAX_BODY_BYTES (64 KiB)
        yield b'"}'

    response = requests.post(f"{server.base_url}{ITEMS}", data=chunks(), timeout=10,
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and error_code(response) == "payload_too_large"
    fits = requests.post(f"{server.base_url}{ITEMS}", data=iter([b'{"name": "chunked-ok"}']),
                         timeout=10, headers={"Content-Type": "application/json"})  # fmt: skip
    assert fits.status_code == 201, fits.text


def test_oversized_headers_and_request_line_get_json_errors(server: ServiceProcess) -> None:
    response = requests.get(f"{server.base_url}/livez", headers={"X-Big": "x" * 9000}, timeout=5)
    assert response.status_code == 431 and error_code(response) == "headers_too_large"
    response = requests.get(f"{server.base_url}/livez?{'a' * 5000}", timeout=5)
    assert response.status_code == 414 and error_code(response) == "uri_too_long"
    many = {f"X-H{i}": "1" for i in range(150)}
    response = requests.get(f"{server.base_url}/livez", headers=many, timeout=5)
    assert response.status_code == 431


def test_statement_timeout_turns_a_stuck_query_into_a_fast_503(
    server: ServiceProcess, database_url: str
) -> None:
    created = requests.post(f"{server.base_url}{ITEMS}", json={"name": f"locked-{time.time()}"},
                            timeout=5).json()  # fmt: skip
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT 1 FROM items WHERE id = %s FOR UPDATE", (created["id"],))
        started = time.monotonic()
        response = requests.patch(f"{server.base_url}{ITEMS}/{created['id']}",
                                  json={"description": "blocked"}, timeout=10)  # fmt: skip
        elapsed = time.monotonic() - started
        blocker.rollback()
    assert response.status_code == 503 and error_code(response) == "database_unavailable"
    assert 0.4 < elapsed < 3, elapsed
    assert 1 <= int(response.headers["Retry-After"]) <= 5  # jittered: tests/service
    assert "FOR UPDATE" not in response.text and "statement" not in response.text


def test_slow_loris_client_does_not_take_down_the_other_worker(server: ServiceProcess) -> None:
    """One client dribbling its headers holds at most one sync worker, and only until the
    worker timeout; the other worker keeps serving meanwhile. (Behind ingress-nginx, which
    buffers requests, such clients never reach gunicorn at all.)"""
    stop = threading.Event()

    def dribble() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"X-a: b\r\n")
                except OSError:
                    return  # the server cut us off: good
                time.sleep(0.5)

    loris = threading.Thread(target=dribble, daemon=True)
    loris.start()
    try:
        time.sleep(0.5)
        statuses = [requests.get(f"{server.base_url}/livez", timeout=5).status_code
                    for _ in range(100)]  # fmt: skip
        assert statuses == [200] * 100
        loris.join(timeout=15)  # GUNICORN_TIMEOUT=4: the stuck worker is replaced
        assert not loris.is_alive(), "the slow client was never cut off"
    finally:
        stop.set()
    assert [requests.get(f"{server.base_url}/livez", timeout=5).status_code
            for _ in range(20)] == [200] * 20  # fmt: skip
