"""The chart's dashboard and rules against a real Prometheus scraping the real service
(gunicorn, PostgreSQL) under a short mixed load, with the labels its ServiceMonitor would
attach: every query parses, names only metrics that exist, and every panel over the
service's own metrics shows a value (0 errors is 0, not "No data")."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chartlib import Render, render
from tests.monitoring.promlib import (
    Prometheus,
    exposed_names,
    metric_names,
    running_prometheus,
)
from tests.monitoring.rulelib import alerts, prometheus, recording_rules, write_rule_file
from tools.load import LoadLoop, Request, mixed_requests, seed_items
from tools.service_process import running_service

pytestmark = [pytest.mark.slow, pytest.mark.helm]

# Series the rules and panels read from kube-state-metrics, which a cluster's monitoring
# stack runs (kube-prometheus-stack does); not the service's, so not scraped here.
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas_unavailable",
    "kube_pod_container_status_restarts_total",
    "kube_job_failed",
}
# Prometheus's own series for every target.
SCRAPE_METRICS = {"up"}
# Grafana's $__rate_interval for a 1 s scrape interval, rounded up.
RATE_INTERVAL = "10s"
# Panels that show a ratio of failures: a healthy service's is 0, never "No data".
ZERO_WHEN_HEALTHY = {
    "Error ratio (5xx)",
    "Answered 503: database unavailable (AppDatabaseUnavailable)",
}


def dashboard(rendered: Render) -> dict[str, Any]:
    (text,) = rendered.one("ConfigMap", "app-grafana-dashboard")["data"].values()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def resolve_variables(prom: Prometheus, board: dict[str, Any]) -> dict[str, str]:
    """Each query variable's first value, as Grafana would pick it (`label_values(sel, l)`)."""
    values: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        for name, value in values.items():
            query = query.replace(f"${name}", value)
        selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        answer = prom.api(f"label/{label}/values", **{"match[]": selector})
        assert answer["data"], f"variable {variable['name']}: {query} has no values"
        values[variable["name"]] = answer["data"][0]
    return values


def substitute(expr: str, variables: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(f"${name}", value)
    assert "$" not in expr, f"an unknown Grafana variable in {expr}"
    return expr


def with_misses(prefix: str, ids: list[int]) -> Any:
    """The mixed load, plus reads of items that do not exist (404) and readiness probes."""
    mixed = mixed_requests(prefix, ids)

    def next_request(n: int) -> Request:
        if n % 10 == 5:
            return ("GET", "/api/v1/items/999999999", None)
        if n % 10 == 7:
            return ("GET", "/readyz", None)
        return mixed(n)

    return next_request


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Looked up before the database and the service start: skips (or fails) at once."""
    return prometheus()


def test_dashboard_and_rules_on_a_real_prometheus(
    prometheus_binary: str, postgres: object, database_url: str, helm4: str, tmp_path: Path
) -> None:
    binary = prometheus_binary
    rendered = render(helm4, "prod")
    board = dashboard(rendered)
    rule_file = write_rule_file(rendered, tmp_path)
    (tmp_path / "metrics").mkdir()
    env = {"DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}  # fmt: skip

    with running_service(env) as service:
        target = f"127.0.0.1:{service.port}"
        with running_prometheus(binary, target, rule_file, tmp_path) as prom:
            prefix = f"dash-{time.time_ns()}"
            ids = seed_items(service.port, prefix, count=10)
            load = LoadLoop(service.port, with_misses(prefix, ids), threads=3, seconds=60)
            with load:
                # Rules evaluate every second; the slowest window's series appears last.
                prom.wait_for('slo:sli_error:ratio_rate3d{slo="latency"}', timeout=30)
                time.sleep(3)  # a few more scrapes inside the rate interval
                url = f"{service.base_url}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    exposition = response.read().decode()
                answers = check_queries(prom, board, rendered, exposed_names(exposition))
                page_alerts = prom.query('ALERTS{severity="page"}')["data"]["result"]
    statuses = set(load.report.statuses)
    assert statuses <= {200, 201, 404}, statuses
    assert not page_alerts, f"a healthy service paged: {page_alerts}"
    assert answers


def check_queries(
    prom: Prometheus, board: dict[str, Any], rendered: Render, exposed: set[str]
) -> dict[str, list[dict[str, Any]]]:
    recorded = {r["record"] for r in recording_rules(rendered)}
    known = exposed | recorded | SCRAPE_METRICS | KUBE_STATE_METRICS
    variables = resolve_variables(prom, board)
    assert variables["namespace"] == "app" and variables["service"] == "app", variables
    assert variables["latency_le"] == "0.3", variables

    answers: dict[str, list[dict[str, Any]]] = {}
    for title, raw in panel_queries(board):
        expr = substitute(raw, variables)
        answer = prom.query(expr)
        assert answer["status"] == "success", f"panel {title!r}: {expr}: {answer.get('error')}"
        names = metric_names(expr)
        assert names, f"panel {title!r} selects no metric: {expr}"
        assert names <= known, f"panel {title!r} reads unknown metrics {names - known}"
        result = answer["data"]["result"]
        answers[expr] = result
        if names & KUBE_STATE_METRICS:
            continue  # no kube-state-metrics here; the kind e2e suite has one
        assert result, f'panel {title!r} shows "No data" for a healthy service: {expr}'
        values = [float(sample["value"][1]) for sample in result]
        assert not any(math.isnan(v) for v in values), f"panel {title!r}: NaN from {expr}"
        if title in ZERO_WHEN_HEALTHY:
            assert values == [0.0], f"panel {title!r}: {values} for a healthy service"

    rules = [(r["record"], r["expr"]) for r in recording_rules(rendered)]
    rules += [(name, r["expr"]) for name, r in alerts(rendered).items()]
    for name, expr in rules:
        answer = prom.query(expr)
        assert answer["status"] == "success", f"rule {name}: {answer.get('error')}"
        assert metric_names(expr) <= known, f"rule {name}: {metric_names(expr) - known}"
        if name.startswith("slo:"):
            assert answer["data"]["result"], f"recording rule {name} has no data: {expr}"
    return answers
