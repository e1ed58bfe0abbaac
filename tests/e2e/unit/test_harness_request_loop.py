"""The request loop counts every failure exactly and shows which version served when."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.harness.request_loop import LoopReport, Outcome, RequestLoop
from tests.e2e.harness.waiting import wait_until
from tests.e2e.unit.standins import RunningServer


def version_of(response: requests.Response) -> str | None:
    return str(response.json()["version"])


def loop_against(server: RunningServer, *, workers: int = 1) -> RequestLoop:
    return RequestLoop(
        lambda session: session.get(server.url + "/readyz", timeout=2),
        version_of=version_of,
        workers=workers,
        pause=0.005,
    )


def wait_for_requests(server: RunningServer, count: int) -> None:
    wait_until(
        lambda: server.script.requests >= count, what=f"{count} requests", timeout=20, interval=0.01
    )


def test_every_failure_is_counted_by_kind(http_server: RunningServer) -> None:
    http_server.script.fail = {5, 6, 7}
    http_server.script.drop = {10}
    with loop_against(http_server) as loop:
        wait_for_requests(http_server, 20)
    report = loop.report()
    assert report.total == http_server.script.requests
    kinds = sorted(o.error_kind or "" for o in report.failures)
    assert kinds == ["ConnectionError", "HTTP 503", "HTTP 503", "HTTP 503"]
    summary = report.summary()
    assert "4 failed" in summary
    assert "HTTP 503 x3" in summary
    assert "ConnectionError x1" in summary


def test_a_clean_run_has_no_failures(http_server: RunningServer) -> None:
    with loop_against(http_server, workers=3) as loop:
        wait_for_requests(http_server, 30)
    report = loop.report()
    assert report.failures == []
    assert report.total == http_server.script.requests


def test_versions_show_the_switch_and_the_end_state(http_server: RunningServer) -> None:
    with loop_against(http_server, workers=2) as loop:
        wait_for_requests(http_server, 10)
        loop.mark("upgrade started")
        http_server.script.version = "v2"
        switched_at = http_server.script.requests
        wait_for_requests(http_server, switched_at + 10)
    report = loop.report()
    spans = report.versions()
    assert [s.version for s in spans] == ["v1", "v2"]
    assert spans[0].count + spans[1].count == report.total
    assert report.last_versions(5) == ["v2"] * 5
    assert "upgrade started" in report.summary()


def test_requests_started_after_a_point_are_countable(http_server: RunningServer) -> None:
    with loop_against(http_server) as loop:
        wait_for_requests(http_server, 3)
        since = loop.elapsed()
        assert wait_until(
            lambda: loop.count_since(since) >= 3, what="3 more", timeout=20, interval=0.01
        )


def test_an_unreadable_body_is_a_failure(http_server: RunningServer) -> None:
    def broken_version(response: requests.Response) -> str:
        return str(response.json()["no-such-field"])

    loop = RequestLoop(
        lambda session: session.get(http_server.url, timeout=2),
        version_of=broken_version,
        workers=1,
    )
    with loop:
        wait_for_requests(http_server, 2)
    assert loop.report().failures
    assert all(o.error_kind == "unreadable response" for o in loop.report().failures)


def test_a_timeout_is_a_failure() -> None:
    def too_slow(session: requests.Session) -> requests.Response:
        time.sleep(0.01)
        raise requests.Timeout("read timed out")

    with RequestLoop(too_slow, workers=1) as loop:
        wait_until(lambda: loop.report().total >= 2, what="2 attempts", timeout=10, interval=0.01)
    assert {o.error_kind for o in loop.report().failures} == {"Timeout"}


def test_count_between_counts_requests_started_in_a_window() -> None:
    report = LoopReport(
        [
            Outcome(started_at=t, duration=0.1, status=200, error=None, version="v1")
            for t in (0.5, 1.0, 1.5, 2.0)
        ]
    )
    assert report.count_between(1.0, 2.0) == 2
    assert report.count_between(3.0, 4.0) == 0


def test_report_orders_versions_by_start_time_not_completion() -> None:
    report = LoopReport(
        [
            Outcome(started_at=2.0, duration=0.1, status=200, error=None, version="v2"),
            Outcome(started_at=1.0, duration=1.5, status=200, error=None, version="v1"),
        ]
    )
    assert [s.version for s in report.versions()] == ["v1", "v2"]
    assert report.last_versions(1) == ["v2"]


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        RequestLoop(lambda s: s.get("http://127.0.0.1:9"), workers=0)
