"""wait_until: returns the first real result, explains a timeout, never hides a bug."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.e2e.harness.waiting import NotYet, WaitTimeoutError, answered, wait_until
from tools.localpg import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_result() -> None:
    clock = FakeClock()
    answers = iter([None, False, NotYet("still running"), "done"])

    def check() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    result = wait_until(
        check, what="x", timeout=10, interval=1, retry_on=(NotYet,), clock=clock, sleep=clock.sleep
    )
    assert result == "done"
    assert clock.sleeps == [1, 1, 1]


def test_timeout_names_what_and_the_last_observation_and_runs_diagnostics() -> None:
    clock = FakeClock()

    def check() -> None:
        raise NotYet("job app-migrate-1 has 0 succeeded, 1 active")

    with pytest.raises(WaitTimeoutError) as caught:
        wait_until(
            check,
            what="the migration Job to complete",
            timeout=5,
            interval=2,
            retry_on=(NotYet,),
            diagnose=lambda: "pod app-migrate-1-x Running",
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(caught.value)
    assert "the migration Job to complete after 5s" in message
    assert "NotYet: job app-migrate-1 has 0 succeeded, 1 active" in message
    assert "pod app-migrate-1-x Running" in message
    # The last sleep is cut to the deadline: no check happens after it has passed.
    assert clock.sleeps == [2, 2, 1]
    assert clock.now == 5


def test_an_unexpected_exception_propagates_at_once() -> None:
    clock = FakeClock()

    def check() -> None:
        raise KeyError("status")

    with pytest.raises(KeyError):
        wait_until(check, what="x", timeout=60, retry_on=(NotYet,), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_failing_diagnostics_do_not_replace_the_timeout() -> None:
    clock = FakeClock()

    def broken() -> str:
        raise RuntimeError("kubectl gone")

    with pytest.raises(WaitTimeoutError, match="diagnostics failed: RuntimeError: kubectl gone"):
        wait_until(
            lambda: None, what="x", timeout=1, diagnose=broken, clock=clock, sleep=clock.sleep
        )


def test_zero_result_counts_as_done() -> None:
    # 0 is a real answer (e.g. "0 failed requests"); only None and False mean "not yet".
    assert wait_until(lambda: 0, what="x", timeout=1) == 0


def test_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        wait_until(lambda: 1, what="x", timeout=0)


@pytest.fixture
def warming_up() -> Iterator[str]:
    """A server that answers its first request 503 "warming up", then 200."""
    statuses = iter([503])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = next(statuses, 200)
            body = b"warming up" if status != 200 else b'{"status": "ok"}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}/livez"
        server.shutdown()


def test_answered_says_what_came_instead_of_a_200_then_gives_the_response(
    warming_up: str,
) -> None:
    with pytest.raises(NotYet, match="HTTP 503: warming up"):
        answered(lambda: requests.get(warming_up, timeout=5))
    assert answered(lambda: requests.get(warming_up, timeout=5)).json() == {"status": "ok"}


def test_answered_turns_a_refused_connection_into_not_yet() -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}/livez"
    with pytest.raises(NotYet, match="ConnectionError"):
        answered(lambda: requests.get(nothing_there, timeout=5))
