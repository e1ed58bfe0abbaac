"""What every alert of the rendered PrometheusRule carries for the person it wakes: a
severity, a summary and description naming the release and namespace, and a runbook
section in docs/runbooks.md that says what to check first and how to mitigate."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import ENVIRONMENTS, Render, render, run_helm, template_args
from tests.monitoring.rulelib import alerts, recording_rules, runbook_sections

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def staging_and_prod(helm4: str) -> dict[str, Render]:
    return {env: render(helm4, env) for env in ("staging", "prod")}


def test_on_where_operators_are_and_off_in_dev(renders: dict[str, Render]) -> None:
    assert {env for env in ENVIRONMENTS if renders[env].has("PrometheusRule")} == {
        "staging",
        "prod",
    }


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_every_alert_is_actionable(staging_and_prod: dict[str, Render], env: str) -> None:
    sections = runbook_sections()
    for name, rule in alerts(staging_and_prod[env]).items():
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        for key in ("summary", "description"):
            text = rule["annotations"][key]
            assert "release app" in text.lower() and "namespace app" in text, (name, key)
        base, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert base == "docs/runbooks.md" and anchor == name.lower(), name
        assert anchor in sections, f"{name}: docs/runbooks.md has no section #{anchor}"
        assert "Check first:" in sections[anchor] and "Mitigate:" in sections[anchor], name


def test_runbook_base_url_is_a_value(helm4: str) -> None:
    url = "https://git.example.com/app/blob/main/docs/runbooks.md"
    rendered = render(helm4, "prod", sets=[f"prometheusRule.runbookBaseUrl={url}"])
    urls = {r["annotations"]["runbook_url"] for r in alerts(rendered).values()}
    assert all(u.startswith(url + "#") for u in urls), urls


def test_slo_values_reach_the_rules(staging_and_prod: dict[str, Render]) -> None:
    """Per environment: staging's 500 ms threshold and 99.5% target, prod's 300 ms and 99.9%."""
    for env, le, budget in (("staging", "0.5", "0.005"), ("prod", "0.3", "0.001")):
        rendered = staging_and_prod[env]
        latency = [
            r["expr"]
            for r in recording_rules(rendered)
            if r["record"].startswith("slo:sli_error:") and r["labels"]["slo"] == "latency"
        ]
        assert latency and all(f'le="{le}"' in expr for expr in latency), env
        fast = alerts(rendered)["AppAvailabilityBudgetBurnFast"]["expr"]
        assert f"14.4 * {budget}" in fast, (env, fast)


def test_a_latency_threshold_off_the_buckets_is_refused(helm4: str) -> None:
    result = run_helm(helm4, *template_args("prod", ["prometheusRule.slo.latencyThresholdMs=301"]))
    assert result.returncode != 0
    assert "latencyThresholdMs" in result.stderr and "300" in result.stderr, result.stderr


def test_alerts_without_a_scrape_are_refused(helm4: str) -> None:
    sets = ["serviceMonitor.enabled=false"]
    result = run_helm(helm4, *template_args("prod", sets))
    assert result.returncode != 0
    assert "prometheusRule.enabled=true needs serviceMonitor.enabled=true" in result.stderr
