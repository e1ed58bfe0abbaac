"""SIGTERM (Kubernetes stopping a pod) and SIGHUP (graceful reload) under continuous load."""

from __future__ import annotations

import signal
import time

import pytest

from tools.load import LoadLoop, mixed_requests, seed_items
from tools.service_process import running_service

pytestmark = pytest.mark.slow

GRACEFUL_TIMEOUT = 10


def test_sighup_reload_under_load_fails_no_request(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}
    with running_service(env) as service:
        old_workers = set(worker_pids(service.process.pid))
        ids = seed_items(service.port, f"hup-{time.time_ns()}")
        with LoadLoop(service.port, mixed_requests("hup", ids), threads=4, seconds=30) as load:
            time.sleep(1.5)
            service.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while set(worker_pids(service.process.pid)) & old_workers:
                assert time.monotonic() < deadline, "old workers never went away"
                time.sleep(0.1)
            time.sleep(1.5)
        report = load.report
        assert service.process.poll() is None, "the master must survive a reload"
    assert len(report.results) > 200
    assert set(report.statuses) <= {200, 201}, report.statuses
    print(f"SIGHUP: {len(report.results)} requests, statuses {dict(report.statuses)}")


def test_sigterm_under_load_completes_accepted_requests_and_exits_in_time(
    database_url: str,
) -> None:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING",
           "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}  # fmt: skip
    with running_service(env) as service:
        ids = seed_items(service.port, f"term-{time.time_ns()}")
        with LoadLoop(service.port, mixed_requests("term", ids), threads=4, seconds=30) as load:
            time.sleep(1.5)
            signalled = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            exit_code = service.process.wait(timeout=GRACEFUL_TIMEOUT + 5)
            exited_after = time.monotonic() - signalled
            time.sleep(0.5)
        report = load.report
    assert exit_code == 0
    assert exited_after < GRACEFUL_TIMEOUT
    # Every request in flight when the signal came, or accepted by a worker after it,
    # got a complete, successful answer.
    answered = [r.status for r in report.results if r.status is not None]
    assert answered and all(status in (200, 201) for status in answered)
    before = report.where(lambda r: r.started < signalled)
    assert all(r.status is not None for r in before), [r.error for r in before if r.error]
    # Connections made after SIGTERM find the listener closing and are refused (or reset,
    # if they reach the backlog after the workers' final drain). That is why the chart's
    # preStop pause takes the pod out of the Service before SIGTERM.
    late_failures = report.where(lambda r: r.error is not None)
    assert all(r.started >= signalled for r in late_failures)
    assert all(r.error in ("refused", "broken: ConnectionResetError") for r in late_failures)
    print(f"SIGTERM: {len(report.results)} requests ({len(before)} before the signal, all "
          f"answered), statuses {dict(report.statuses)}, exited {exited_after:.2f} s after "
          "the signal")  # fmt: skip


def worker_pids(master: int) -> list[int]:
    from pathlib import Path

    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []
