"""Request metrics counted in memory must reach Prometheus exactly as observe() would
have written them: same buckets, same sums, nothing lost between threads or at a fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.telemetry.metrics_buffer import FLUSH_SECONDS, RequestMetricsBuffer
from tools.service_process import ROOT

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LABELS = ["method", "route", "status"]


def metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("reqs_total", "Requests.", LABELS, registry=registry)
    histogram = Histogram("req_seconds", "Latency.", LABELS, buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def samples(registry: CollectorRegistry) -> list[str]:
    """The exposition without the creation times, which differ between two registries."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# Every bucket, both sides of each bound, the bounds themselves, zero and the overflow.
DURATIONS = [0.0, 0.0001, *BUCKETS, *(b + 1e-9 for b in BUCKETS), 7.5, 120.0, 0.003, 0.2]
KEYS = [("GET", "/api/v1/items/<item_id>", "200"), ("POST", "/api/v1/items", "201"),
        ("GET", "<unmatched>", "404")]  # fmt: skip


def test_a_flushed_batch_is_what_observe_would_have_written() -> None:
    """Also the guard for prometheus_client upgrades: the flush writes a histogram's
    sum and bucket values directly, which only this comparison would notice changing."""
    expected, expected_counter, expected_histogram = metrics()
    actual, counter, histogram = metrics()
    buffer = RequestMetricsBuffer(counter, histogram)
    for n, key in enumerate(KEYS):
        for seconds in DURATIONS[n:]:
            expected_counter.labels(*key).inc()
            expected_histogram.labels(*key).observe(seconds)
            buffer.record(key, seconds)
    assert value(actual, "reqs_total", method="GET", route="<unmatched>", status="404") == 0
    buffer.flush()
    assert samples(actual) == samples(expected)
    buffer.flush()  # nothing new: nothing counted twice
    assert samples(actual) == samples(expected)


@pytest.fixture
def threads_switch_constantly() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so an unguarded update would be
    interrupted between reading a count and writing it back."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


MULTIPROCESS_TWINS = """
import json, os, sys
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from service.telemetry.metrics_buffer import RequestMetricsBuffer

buckets, durations, keys = json.loads(sys.argv[1])
labels = ["method", "route", "status"]
def pair(prefix):
    return (Counter(prefix + "_total", "Requests.", labels),
            Histogram(prefix + "_seconds", "Latency.", labels, buckets=buckets))
observed_counter, observed_histogram = pair("observed")
buffer = RequestMetricsBuffer(*pair("buffered"))
for n, key in enumerate(keys):
    for seconds in durations[n:]:
        observed_counter.labels(*key).inc()
        observed_histogram.labels(*key).observe(seconds)
        buffer.record(tuple(key), seconds)
buffer.flush()
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def test_in_multiprocess_mode_too(tmp_path: Path) -> None:
    """Production writes mmap'd files that another worker's scrape reads back."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    arguments = json.dumps([BUCKETS, DURATIONS, KEYS])
    text = subprocess.run([sys.executable, "-c", MULTIPROCESS_TWINS, arguments], env=env,
                          check=True, capture_output=True, text=True, cwd=ROOT).stdout  # fmt: skip
    observed, buffered = (
        sorted(line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix))
        for prefix in ("observed_", "buffered_")
    )
    assert len(observed) > len(KEYS) * len(BUCKETS)
    assert buffered == observed


def test_a_failed_flush_keeps_what_it_had_not_started_on() -> None:
    registry, counter, histogram = metrics()
    buffer = RequestMetricsBuffer(counter, histogram)
    first, second = ("GET", "/a", "200"), ("GET", "/b", "200")
    buffer.record(first, 0.001)
    buffer.record(second, 0.001)

    def disk_full(amount: float) -> None:
        raise OSError(28, "No space left on device")

    sum_value = histogram.labels(*first)._sum
    writable = sum_value.inc
    sum_value.inc = disk_full  # the first tally's histogram cannot be written
    with pytest.raises(OSError, match="No space"):
        buffer.flush()
    sum_value.inc = writable
    buffer.flush()
    assert value(registry, "reqs_total", method="GET", route="/b", status="200") == 1
    assert value(registry, "req_seconds_count", method="GET", route="/b", status="200") == 1
    # The tally that failed half-way is not written again: its counter has it once.
    assert value(registry, "reqs_total", method="GET", route="/a", status="200") == 1


@pytest.mark.usefixtures("threads_switch_constantly")
def test_no_request_is_lost_between_threads_and_flushes() -> None:
    registry, counter, histogram = metrics()
    buffer = RequestMetricsBuffer(counter, histogram)
    threads, per_thread = 8, 5_000
    done = threading.Event()

    def flush_all_the_time() -> None:
        while not done.is_set():
            buffer.flush()

    def serve() -> None:
        for n in range(per_thread):
            buffer.record(("GET", "/livez", "200"), 0.001 * (n % 7))

    flusher = threading.Thread(target=flush_all_the_time)
    flusher.start()
    workers = [threading.Thread(target=serve) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    flusher.join()
    buffer.flush()
    labels = {"method": "GET", "route": "/livez", "status": "200"}
    assert value(registry, "reqs_total", **labels) == threads * per_thread
    assert value(registry, "req_seconds_count", **labels) == threads * per_thread
    expected_sum = threads * sum(0.001 * (n % 7) for n in range(per_thread))
    assert abs(value(registry, "req_seconds_sum", **labels) - expected_sum) < 1e-6


def test_the_flusher_thread_writes_without_a_scrape_and_its_stop_writes_the_rest() -> None:
    registry, counter, histogram = metrics()
    buffer = RequestMetricsBuffer(counter, histogram)
    labels = {"method": "GET", "route": "/livez", "status": "200"}
    before = set(threading.enumerate())
    buffer.start_flushing()
    buffer.start_flushing()  # a second call starts no second thread
    flushers = [t for t in set(threading.enumerate()) - before if t.name == "metrics-flusher"]
    assert len(flushers) == 1
    buffer.record(("GET", "/livez", "200"), 0.001)
    deadline = time.monotonic() + 10 * FLUSH_SECONDS
    while value(registry, "reqs_total", **labels) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value(registry, "reqs_total", **labels) == 1
    buffer.record(("GET", "/livez", "200"), 0.001)
    buffer.stop_flushing()  # the worker is exiting: what is left is written now
    assert value(registry, "reqs_total", **labels) == 2
    flushers[0].join(timeout=5 * FLUSH_SECONDS)
    assert not flushers[0].is_alive()


def test_a_forked_child_does_not_report_its_parents_unflushed_requests() -> None:
    registry, counter, histogram = metrics()
    buffer = RequestMetricsBuffer(counter, histogram)
    labels = {"method": "GET", "route": "/livez", "status": "200"}
    buffer.record(("GET", "/livez", "200"), 0.001)  # the parent's, not yet flushed
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one request of its own
        buffer.record(("GET", "/livez", "200"), 0.001)
        buffer.flush()
        os.write(write, str(value(registry, "reqs_total", **labels)).encode())
        os._exit(0)
    os.close(write)
    child_count = float(os.read(read, 100))
    os.close(read)
    os.waitpid(pid, 0)
    buffer.flush()
    assert child_count == 1
    assert value(registry, "reqs_total", **labels) == 1
