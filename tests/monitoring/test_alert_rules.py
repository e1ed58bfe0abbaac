"""`promtool test rules` for every alert of the chart's PrometheusRule, as helm renders it
for values/prod.yaml: each fires on the series it is for, not before its time, and stays
silent on a healthy service's series."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import Render, render
from tests.monitoring.alert_cases import CASES, AlertCase
from tests.monitoring.rulelib import alerts, promtool, write_rule_file

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def prod(helm4: str) -> Render:
    return render(helm4, "prod")


def test_every_alert_has_a_case(prod: Render) -> None:
    assert sorted(alerts(prod)) == sorted(case.alert for case in CASES)


def expected(case: AlertCase, rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"exp_labels": {**labels, "severity": rule["labels"]["severity"]},
         "exp_annotations": rule["annotations"]}
        for labels in case.labels
    ]  # fmt: skip


def promtool_tests(case: AlertCase, rule: dict[str, Any]) -> list[dict[str, Any]]:
    def series(values: dict[str, str]) -> list[dict[str, str]]:
        return [{"series": name, "values": v} for name, v in values.items()]

    firing = [
        {"eval_time": case.silent_at, "alertname": case.alert, "exp_alerts": []},
        {"eval_time": case.fires_at, "alertname": case.alert, "exp_alerts": expected(case, rule)},
        *({"eval_time": case.fires_at, "alertname": other, "exp_alerts": []}
          for other in case.others_silent),
    ]  # fmt: skip
    healthy = [{"eval_time": case.healthy_at, "alertname": case.alert, "exp_alerts": []}]
    return [
        {"name": f"{case.alert} fires", "interval": "1m",
         "input_series": series(case.series), "alert_rule_test": firing},
        {"name": f"{case.alert} silent when healthy", "interval": "1m",
         "input_series": series(case.healthy), "alert_rule_test": healthy},
    ]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.alert)
def test_alert(case: AlertCase, prod: Render, tmp_path: Path) -> None:
    tool = promtool()
    rule_file = write_rule_file(prod, tmp_path)
    tests = {"rule_files": [rule_file.name], "evaluation_interval": "1m",
             "tests": promtool_tests(case, alerts(prod)[case.alert])}  # fmt: skip
    test_file = tmp_path / "test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [tool, "test", "rules", test_file.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
