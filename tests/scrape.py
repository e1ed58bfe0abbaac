"""Read /metrics from a server with several workers.

Each worker writes its request counts every FLUSH_SECONDS (service/telemetry/metrics_buffer.py);
only the worker that answers a scrape flushes first. A test that made requests and
expects to see them waits, within a bound, until every worker has written them.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from service.telemetry.metrics_buffer import FLUSH_SECONDS


def scrape_until(metrics_url: str, done: Callable[[str], bool]) -> str:
    """The body of the first scrape `done` accepts, or of the last one after 10 flushes."""
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while True:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            assert response.status == 200
            text: str = response.read().decode()
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples that carry these labels (all of them, if none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
