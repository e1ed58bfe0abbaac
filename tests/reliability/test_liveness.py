"""The liveness probe, exactly as the chart renders it, stays green while every worker
waits on a locked table: a slow database must not make the kubelet restart healthy pods."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.chart.chartlib import helm_binary, render
from tests.chart.kubelet import probe_once
from tests.conftest import migrate
from tools.load import LoadLoop, seed_items
from tools.service_process import running_service

pytestmark = pytest.mark.slow
CLIENTS = 8
PROBES = 10


def test_rendered_liveness_probe_passes_while_the_database_is_locked(empty_database: str) -> None:
    rendered = render(helm_binary(4), "prod")
    container = rendered.deployment()["spec"]["template"]["spec"]["containers"][0]
    liveness, startup = container["livenessProbe"], container["startupProbe"]
    config = {k: str(v) for k, v in rendered.config_map()["data"].items()}
    config.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the pod's emptyDir; per process here
    migrate(empty_database)
    # The probes under a locked table are the subject; the clients send no tokens, so access
    # control (tests/auth) is off here instead of the rendered placeholder issuer.
    env = {**config, "DATABASE_URL": empty_database, "LOG_LEVEL": "ERROR", "AUTH_DISABLED": "true"}
    with running_service(env) as service:
        ids = seed_items(service.port, "locked", count=5)

        def read(n: int) -> tuple[str, str, None]:
            return ("GET", f"/api/v1/items/{ids[n % len(ids)]}", None)

        with psycopg.connect(empty_database) as blocker:
            blocker.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            with (
                LoadLoop(service.port, read, threads=CLIENTS, seconds=PROBES + 5, timeout=30),
                ThreadPoolExecutor(2) as prober,
            ):
                time.sleep(1)  # every worker is waiting on the lock, clients queue behind
                outcomes = []
                for _ in range(PROBES):  # one a second: the kubelet's, compressed in time
                    live = prober.submit(probe_once, container, liveness, service.port)
                    http = prober.submit(probe_once, container, startup, service.port)
                    outcomes.append((live.result(), http.result()))
                    time.sleep(1)
                blocker.rollback()

    live_failed = [outcome for (ok, outcome), _ in outcomes if not ok]
    http_failed = sum(1 for _, (ok, _outcome) in outcomes if not ok)
    print(
        f"table locked, {CLIENTS} clients: rendered liveness probe "
        f"({next(iter(set(liveness) & {'tcpSocket', 'httpGet'}))}, "
        f"{liveness['timeoutSeconds']} s) failed {len(live_failed)} of {PROBES}; "
        f"httpGet /livez failed {http_failed} of {PROBES}"
    )
    assert not live_failed, live_failed
