"""wait_until: returns the first real result, explains a timeout, never hides a bug."""

from __future__ import annotations

import pytest

from tests.e2e.harness.waiting import NotYet, WaitTimeoutError, wait_until


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
