"""Soak: mixed load for SOAK_SECONDS (20 s in the suite; `make soak` runs 5 minutes).

Zero errors, flat memory per worker, and database connections bounded by the pool
configuration (counted in pg_stat_activity, not assumed).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tools.load import LoadLoop, mixed_requests, seed_items
from tools.service_process import running_service

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
WARMUP_SECONDS = min(5.0, SOAK_SECONDS / 4)
WORKERS, POOL_SIZE, MAX_OVERFLOW = 2, 3, 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def workers_of(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def test_soak_mixed_load(postgres: object, database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": str(WORKERS),
           "DB_POOL_SIZE": str(POOL_SIZE), "DB_MAX_OVERFLOW": str(MAX_OVERFLOW),
           # No recycling during the soak: a leak must show, not be hidden by restarts.
           "GUNICORN_MAX_REQUESTS": "0", "LOG_LEVEL": "WARNING"}  # fmt: skip
    database = database_url.rsplit("/", 1)[1]
    peak_connections = 0
    stop_sampling = threading.Event()

    def sample_connections() -> None:
        nonlocal peak_connections
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop_sampling.wait(0.2):
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'service'", (database,),
                ).fetchone() or (0,)  # fmt: skip
                peak_connections = max(peak_connections, count)

    with running_service(env) as service:
        sampler = threading.Thread(target=sample_connections, daemon=True)
        sampler.start()
        prefix = f"soak-{time.time_ns()}"
        ids = seed_items(service.port, prefix)
        load = LoadLoop(service.port, mixed_requests(prefix, ids), threads=6,
                        seconds=SOAK_SECONDS, max_requests=10_000_000)  # fmt: skip
        with load:
            time.sleep(WARMUP_SECONDS)
            pids = workers_of(service.process.pid)
            before = {pid: rss_kib(pid) for pid in pids}
            time.sleep(max(0.0, SOAK_SECONDS - WARMUP_SECONDS - 0.5))
            after = {pid: rss_kib(pid) for pid in workers_of(service.process.pid)}
        stop_sampling.set()
        sampler.join(timeout=5)
    report = load.report

    assert len(report.results) > SOAK_SECONDS * 50
    assert not report.refused and not report.broken
    assert set(report.statuses) <= {200, 201}, report.statuses
    assert set(after) == set(before), "a worker died or was replaced during the soak"
    growth = {pid: (after[pid] - before[pid]) / before[pid] for pid in before}
    assert max(growth.values()) < 0.10, f"worker RSS grew: {before} -> {after}"
    assert 0 < peak_connections <= WORKERS * (POOL_SIZE + MAX_OVERFLOW)
    print(
        f"soak {SOAK_SECONDS:.0f} s: {len(report.results)} requests, statuses "
        f"{dict(report.statuses)}; worker RSS KiB {before} -> {after}; peak database "
        f"connections {peak_connections} (budget {WORKERS * (POOL_SIZE + MAX_OVERFLOW)})"
    )
