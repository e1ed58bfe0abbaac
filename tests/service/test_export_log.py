"""The exporter's log lines, limited to one of a kind per window (a collector down for an
hour must not write a line a second per worker)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from service.telemetry.export_log import OncePerWindow

Log = Callable[..., None]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def log(clock: Clock, lines: list[str], request: pytest.FixtureRequest) -> Log:
    """Logs through a logger with the filter; what it lets through lands in `lines`."""
    logger = logging.getLogger(f"test-export-log.{request.node.name}")
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(OncePerWindow(60, clock=clock))
    return logger.log


def test_one_line_of_a_kind_per_window(clock: Clock, log: Log, lines: list[str]) -> None:
    for code in range(5):
        log(logging.ERROR, "Failed to export %s batch code: %s", "spans", code)
        clock.now += 10
    # Another kind (another message template, or level) is not held back by the first.
    log(logging.WARNING, "Failed to export %s batch code: %s", "spans", 9)
    log(logging.ERROR, "Failed to export %s batch due to timeout", "spans")
    assert lines == [
        "Failed to export spans batch code: 0",
        "Failed to export spans batch code: 9",
        "Failed to export spans batch due to timeout",
    ]


def test_the_first_line_after_the_window_counts_those_held_back(
    clock: Clock, log: Log, lines: list[str]
) -> None:
    for _ in range(4):
        log(logging.ERROR, "Failed to export %s batch", "spans")
        clock.now += 15
    log(logging.ERROR, "Failed to export %s batch", "spans")  # 60 s after the first
    clock.now += 1
    log(logging.ERROR, "Failed to export %s batch", "spans")
    assert lines == [
        "Failed to export spans batch",
        "Failed to export spans batch (3 more like it held back since the last one)",
    ]
