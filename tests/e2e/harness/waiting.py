"""Poll until something holds, and say what was last seen when it never does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """A wait gave up. An AssertionError, so pytest shows it as a failed expectation."""


def wait_until(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.5,
    retry_on: tuple[type[BaseException], ...] = (),
    diagnose: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `check` until it returns something other than None or False, and return that.

    `check` may describe why it is not done yet by raising one of `retry_on`; the last
    such reason ends up in the timeout message, together with `diagnose()` (e.g. pod
    events), so a failure on a remote CI runner explains itself. Exceptions outside
    `retry_on` propagate at once: a broken check must not look like a slow cluster.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    deadline = clock() + timeout
    last_seen = "nothing yet (the check never completed)"
    attempts = 0
    while True:
        attempts += 1
        try:
            result = check()
        except retry_on as exc:
            last_seen = f"{type(exc).__name__}: {exc}"
        else:
            if result is not None and result is not False:
                return result
            last_seen = f"not yet (check returned {result!r})"
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
    message = (
        f"gave up waiting for {what} after {timeout:g}s ({attempts} checks); last seen: {last_seen}"
    )
    if diagnose is not None:
        try:
            details = diagnose()
        except Exception as exc:  # diagnostics must never hide the timeout
            details = f"(diagnostics failed: {type(exc).__name__}: {exc})"
        message += f"\n--- diagnostics ---\n{details}"
    raise WaitTimeoutError(message)


class NotYet(Exception):  # noqa: N818 - reads as `raise NotYet("job still running")`
    """Raised by a check to say why it is not done; pass `retry_on=(NotYet,)`."""


def answered(get: Callable[[], requests.Response]) -> requests.Response:
    """`get()`'s response if it is a 200; otherwise NotYet saying what came instead: the
    check for `wait_until` on an HTTP endpoint that is still coming up."""
    try:
        response = get()
    except requests.RequestException as exc:
        raise NotYet(f"{type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise NotYet(f"HTTP {response.status_code}: {response.text[:200]}")
    return response
