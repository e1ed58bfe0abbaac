"""The e2e monitoring checks' reading of Prometheus API answers (no cluster)."""

from __future__ import annotations

import pytest

from tests.e2e.harness.prometheus_api import proxy_path, release_rules_loaded, release_target_up
from tests.e2e.harness.waiting import NotYet


def target(namespace: str, service: str, health: str, error: str = "") -> dict[str, object]:
    return {"labels": {"namespace": namespace, "service": service, "job": service},
            "health": health, "lastError": error}  # fmt: skip


def test_proxy_path_goes_through_the_api_server() -> None:
    path = proxy_path("monitoring", "monitoring-prometheus", 9090, "/api/v1/targets")
    assert path == (
        "/api/v1/namespaces/monitoring/services/http:monitoring-prometheus:9090"
        "/proxy/api/v1/targets"
    )


def test_target_up_only_for_the_release_namespace() -> None:
    targets = {"activeTargets": [target("other", "app", "up"), target("ns1", "app", "up")]}
    assert release_target_up(targets, "ns1", "app")["labels"]["namespace"] == "ns1"
    with pytest.raises(NotYet, match="no scrape target"):
        release_target_up(targets, "ns2", "app")


def test_target_down_says_why() -> None:
    targets = {"activeTargets": [target("ns1", "app", "down", "connection refused")]}
    with pytest.raises(NotYet, match="connection refused"):
        release_target_up(targets, "ns1", "app")


def rules_answer(file: str, alerts: list[str]) -> dict[str, object]:
    rules = [{"type": "alerting", "name": a} for a in alerts]
    rules.append({"type": "recording", "name": "slo:sli_error:ratio_rate5m"})
    return {"groups": [{"name": "app.symptoms", "file": file, "rules": rules}]}


def test_rules_loaded_from_the_release_rule_file() -> None:
    file = "/etc/prometheus/rules/prometheus-monitoring-prometheus-rulefiles-0/ns1-app-1234.yaml"
    answer = rules_answer(file, ["AppTargetDown", "AppDatabaseUnavailable"])
    assert release_rules_loaded(answer, "ns1", "app", ["AppTargetDown"]) == {
        "AppTargetDown", "AppDatabaseUnavailable",
    }  # fmt: skip
    with pytest.raises(NotYet, match="AppPodsNotReady"):
        release_rules_loaded(answer, "ns1", "app", ["AppPodsNotReady"])
    with pytest.raises(NotYet):  # another namespace's copy does not count
        release_rules_loaded(answer, "ns2", "app", ["AppTargetDown"])
