"""The real server: several gunicorn workers, multiprocess metrics, JSON logs, graceful stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import requests

from tests.scrape import metric, scrape_until
from tools.service_process import ROOT, running_service

pytestmark = pytest.mark.slow


def test_metrics_aggregate_every_worker(database_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_stale.db").write_bytes(b"left over from a previous run")
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "3",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
    with running_service(env) as service:
        assert not (metrics_dir / "counter_stale.db").exists(), "dir not wiped at start"
        for _ in range(60):
            # A fresh connection each time lets the kernel spread requests over workers.
            response = requests.get(f"{service.base_url}/api/v1/items/1", timeout=5)
            assert response.status_code in (200, 404)
        # Also until the third worker's pool is counted: on a loaded host a worker may still
        # be booting (or be replaced) when the first 60 requests are done.
        text = scrape_until(
            f"{service.base_url}/metrics",
            lambda text: (
                metric(text, "http_requests_total", route="/api/v1/items/<item_id>") >= 60
                and metric(text, "db_pool_size") >= 3
            ),
        )
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2, "requests were not spread over several workers"
        count = metric(text, "http_requests_total", route="/api/v1/items/<item_id>", method="GET")
        assert count == 60
        assert metric(text, "http_request_duration_seconds_count",
                      route="/api/v1/items/<item_id>") == 60  # fmt: skip
        assert "db_pool_connections_open" in text and "db_pool_size" in text
        # Every worker opens its pool before serving: a pool of one per thread, 3 workers.
        assert metric(text, "db_pool_size") == 3


def test_each_worker_connects_before_its_first_request(empty_database: str) -> None:
    """A connection opened in a request cost that request ~30 ms; with max_requests
    recycling workers, that was a stall at the tail every few minutes."""
    env = {"DATABASE_URL": empty_database, "GUNICORN_WORKERS": "2"}
    with (
        running_service(env) as service,
        psycopg.connect(empty_database, autocommit=True) as watcher,
    ):
        # Only /livez has been asked, which never touches the database. (Autocommit: in
        # a transaction, pg_stat_activity would show the first query's snapshot again.)
        name = empty_database.rsplit("/", 1)[1]
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'service' AND backend_type = 'client backend'"
        )
        deadline = time.monotonic() + 10
        while (opened := watcher.execute(query, (name,)).fetchone()) != (2,):
            assert time.monotonic() < deadline, f"{opened} connections\n{service.output()}"
            time.sleep(0.1)


def test_every_log_line_is_json_with_request_ids(database_url: str) -> None:
    with running_service({"DATABASE_URL": database_url, "LOG_LEVEL": "INFO"}) as service:
        response = requests.post(f"{service.base_url}/api/v1/items", json={"name": "logged"},
                                 headers={"X-Request-ID": "trace-42"}, timeout=5)  # fmt: skip
        assert response.status_code in (201, 409)
        time.sleep(0.3)
    entries = [json.loads(line) for line in service.lines if line.strip()]
    assert entries, "no log output"
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert any(e.get("request_id") == "trace-42" and e["path"] == "/api/v1/items"
               and e["status"] in (201, 409) for e in access)  # fmt: skip
    assert {"gunicorn.error"} <= {e["logger"] for e in entries}
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()


def test_sigterm_lets_in_flight_requests_finish(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1",
           "GUNICORN_GRACEFUL_TIMEOUT": "10"}  # fmt: skip
    with running_service(env) as service:
        body = json.dumps({"name": f"in-flight-{time.time()}"}).encode()
        head = (f"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
        with socket.create_connection(("127.0.0.1", service.port), timeout=15) as conn:
            conn.sendall(head + body[:5])  # the worker is now reading this request
            time.sleep(0.5)
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[5:])
            reply = conn.recv(65536).decode()
        assert re.match(r"HTTP/1.1 201", reply), reply
        assert service.process.wait(timeout=15) == 0


def test_config_error_stops_serve_with_one_line() -> None:
    with running_service({"DATABASE_URL": "mysql://nope"}, wait=False) as service:
        assert service.process.wait(timeout=20) == 2
    time.sleep(0.2)
    lines = [line for line in service.lines if line.strip()]
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["level"] == "CRITICAL" and entry["message"].startswith("DATABASE_URL")


def test_recycled_workers_leave_their_counts_but_not_their_files(
    database_url: str, tmp_path: Path
) -> None:
    """max_requests recycles workers all day long; their counts must survive and their
    files must not pile up in the (size-limited) metrics directory."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2",
           "GUNICORN_MAX_REQUESTS": "15", "GUNICORN_MAX_REQUESTS_JITTER": "0",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
    with running_service(env) as service:
        for _ in range(150):
            assert requests.get(f"{service.base_url}/openapi.json", timeout=5).status_code == 200
        time.sleep(1)  # let the last recycled worker be reaped
        text = scrape_until(
            f"{service.base_url}/metrics",
            lambda text: metric(text, "http_requests_total", route="/openapi.json") >= 150,
        )
        counter_files = sorted(p.name for p in metrics_dir.glob("counter_*.db"))
        gauge_files = sorted(p.name for p in metrics_dir.glob("gauge_*.db"))
    assert "counter_archive.db" in counter_files
    assert len(counter_files) <= 3, counter_files  # two live workers + the archive
    assert metric(text, "http_requests_total", route="/openapi.json", method="GET") == 150
    assert metric(text, "http_request_duration_seconds_count", route="/openapi.json") == 150
    assert len(gauge_files) <= 2, gauge_files  # live gauges of exited workers are gone


def test_a_failing_child_exit_hook_is_logged_and_the_master_keeps_serving(
    database_url: str, tmp_path: Path
) -> None:
    """The master folds an exited worker's counts into the archive file; if that fails
    (here the archive is a directory, as a corrupt or unwritable file would be), it logs
    the error and goes on: before, the exception ended the master and all its workers."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1",
           "GUNICORN_MAX_REQUESTS": "10", "GUNICORN_MAX_REQUESTS_JITTER": "0",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
    with running_service(env) as service:
        (metrics_dir / "counter_archive.db").mkdir()
        statuses = []
        for _ in range(40):  # three recycled workers
            statuses.append(requests.get(f"{service.base_url}/openapi.json", timeout=5).status_code)
            time.sleep(0.05)
        alive = service.process.poll() is None
    assert alive, service.output()
    assert statuses == [200] * 40
    assert "could not keep the request counts of exited worker" in service.output()


FORKED_WORKER = """
import gc, os, sys
import service.runtime.gunicorn_conf as conf  # the master: settings, then the preloaded app
import service.wsgi
conf.pre_fork(None, None)
pid = os.fork()
if pid == 0:  # a worker: its full collections scan what it made, not the app
    print(len(gc.get_objects()), gc.get_freeze_count(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_workers_do_not_rescan_the_preloaded_app_in_full_collections(database_url: str) -> None:
    """A full collection over the preloaded app took ~50 ms, a stall at the p99."""
    # Production settings, access control included (keys are fetched lazily, never here).
    env = {**os.environ, "DATABASE_URL": database_url,
           "AUTH_ISSUER": "https://login.example.com", "AUTH_AUDIENCE": "items-api"}  # fmt: skip
    run = subprocess.run([sys.executable, "-c", FORKED_WORKER], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    tracked, frozen = map(int, run.stdout.split())
    assert frozen > 20_000, (tracked, frozen)  # the app: Flask, SQLAlchemy, pydantic, ...
    assert tracked < frozen / 10, (tracked, frozen)
