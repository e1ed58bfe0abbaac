"""Read a cluster Prometheus's HTTP API through the API server's service proxy (no port
to forward) and decide whether a release's scrape target is up and its rules are loaded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.waiting import NotYet


def proxy_path(namespace: str, service: str, port: int, api_path: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services/http:{service}:{port}/proxy{api_path}"


def get_api(kubectl: Kubectl, namespace: str, service: str, port: int, api_path: str) -> Any:
    raw = kubectl.run("get", "--raw", proxy_path(namespace, service, port, api_path)).stdout
    answer = json.loads(raw)
    if answer.get("status") != "success":
        raise NotYet(f"prometheus answered {api_path}: {answer}")
    return answer["data"]


def release_target_up(targets: dict[str, Any], namespace: str, service: str) -> dict[str, Any]:
    """The active target of `service` in `namespace` that is up; NotYet says why not."""
    mine = [
        t for t in targets.get("activeTargets", [])
        if t["labels"].get("namespace") == namespace and t["labels"].get("service") == service
    ]  # fmt: skip
    if not mine:
        raise NotYet(f"no scrape target for service {service} in namespace {namespace} yet")
    up = [t for t in mine if t.get("health") == "up"]
    if not up:
        errors = "; ".join(t.get("lastError") or t.get("health", "?") for t in mine)
        raise NotYet(f"target(s) of {namespace}/{service} not up: {errors}")
    return up[0]


def release_rules_loaded(
    rules: dict[str, Any], namespace: str, rule_name: str, alerts: Iterable[str]
) -> set[str]:
    """The alerts of the PrometheusRule `rule_name` in `namespace` that Prometheus loaded;
    NotYet until all of `alerts` are there. The operator writes each PrometheusRule to a
    file named <namespace>-<name>-<uid>.yaml."""
    prefix = f"{namespace}-{rule_name}-"
    loaded = {
        rule["name"]
        for group in rules.get("groups", [])
        if group.get("file", "").rsplit("/", 1)[-1].startswith(prefix)
        for rule in group.get("rules", [])
        if rule.get("type") == "alerting"
    }
    missing = set(alerts) - loaded
    if missing:
        raise NotYet(f"alerts not loaded yet from {namespace}/{rule_name}: {sorted(missing)}")
    return loaded
