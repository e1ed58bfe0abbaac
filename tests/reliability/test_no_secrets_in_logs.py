"""The database password never reaches a log line or a response, at any log level, in
any failure: bad requests, server errors, a database outage, a wrong password."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tools.localpg import LocalPostgres
from tools.service_process import running_service

pytestmark = pytest.mark.slow


def test_password_appears_in_no_log_or_response(own_postgres: LocalPostgres) -> None:
    password = own_postgres.password
    url = own_postgres.url()
    seen: list[str] = []
    env = {"DATABASE_URL": url, "LOG_LEVEL": "DEBUG", "GUNICORN_WORKERS": "1"}
    with running_service(env) as service:
        base = service.base_url
        responses = [
            requests.post(f"{base}/api/v1/items", json={"name": "secret-scan"}, timeout=5),
            requests.post(f"{base}/api/v1/items", json={"name": "secret-scan"}, timeout=5),
            requests.post(
                f"{base}/api/v1/items",
                data="{",
                timeout=5,
                headers={"Content-Type": "application/json"},
            ),
            requests.get(f"{base}/api/v1/items?limit=5", timeout=5),
            requests.get(f"{base}/readyz", timeout=5),
            requests.get(f"{base}/metrics", timeout=5),
        ]
        own_postgres.stop(mode="immediate")
        responses += [requests.get(f"{base}{p}", timeout=10) for p in ("/readyz", "/api/v1/items")]
        own_postgres.start()
        time.sleep(0.5)
        seen += [r.text + str(r.headers) for r in responses]
    assert {r.status_code for r in responses} >= {201, 409, 400, 200, 503}
    seen.append(service.output())

    wrong = url.replace(password, password[::-1])
    for args in (["migrate", "--timeout", "1"], ["wait-for-schema", "--timeout", "1"]):
        for database_url in (url, wrong):
            result = subprocess.run(
                [sys.executable, "-m", "service", *args],
                env={"DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG", "PATH": "/usr/bin"},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            seen.append(result.stdout + result.stderr)
    assert "password authentication failed" in "".join(seen)  # the wrong password was tried

    leaks = [chunk for chunk in seen if password in chunk or password[::-1] in chunk]
    assert not leaks, leaks[0][:2000]
