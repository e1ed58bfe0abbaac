"""From latency to traces: a real Prometheus (exemplar storage on, as `make monitoring` runs
it) scrapes the real service with tracing on, and the dashboard's latency series carry
exemplars whose trace ids are traces the collector received."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.chart.chartlib import render
from tests.monitoring.promlib import running_prometheus
from tests.monitoring.rulelib import prometheus, write_rule_file
from tests.monitoring.test_dashboard_live import dashboard
from tools.otlp_receiver import running_receiver
from tools.service_process import running_service

pytestmark = [pytest.mark.slow, pytest.mark.helm]


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return prometheus()


def test_latency_panel_links_to_received_traces(
    prometheus_binary: str, database_url: str, helm4: str, tmp_path: Path
) -> None:
    rendered = render(helm4, "prod")
    board = dashboard(rendered)
    [latency] = [p for p in board["panels"] if p["title"].startswith("Latency p50")]
    assert all(target.get("exemplar") is True for target in latency["targets"])
    rule_file = write_rule_file(rendered, tmp_path)
    (tmp_path / "metrics").mkdir()
    with running_receiver() as receiver:
        env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
               "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_BSP_SCHEDULE_DELAY": "200"}  # fmt: skip
        with running_service(env) as service:
            target = f"127.0.0.1:{service.port}"
            flags = ("--enable-feature=exemplar-storage",)
            with running_prometheus(prometheus_binary, target, rule_file, tmp_path, *flags) as prom:
                deadline = time.monotonic() + 30
                found: list[str] = []
                while not found and time.monotonic() < deadline:
                    for _ in range(10):
                        url = f"{service.base_url}/api/v1/items"
                        with urllib.request.urlopen(url, timeout=10) as response:
                            assert response.status == 200
                    time.sleep(1.5)  # a scrape (every second) after the workers' flush
                    selector = (
                        'http_request_duration_seconds_bucket{namespace="app", service="app"}'
                    )
                    now = time.time()
                    answer = prom.api("query_exemplars", query=selector,
                                      start=str(now - 60), end=str(now + 1))  # fmt: skip
                    assert answer["status"] == "success", json.dumps(answer)
                    found = [
                        exemplar["labels"]["trace_id"]
                        for series in answer["data"]
                        for exemplar in series["exemplars"]
                    ]
                received = {span.trace_id for span in receiver.wait_for(lambda s: True)}
                time.sleep(0.5)
                received |= {span.trace_id for span in receiver.spans}
    assert found, "Prometheus stored no exemplar for the latency series"
    assert set(found) <= received, "an exemplar names a trace the collector never got"
