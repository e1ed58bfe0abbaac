"""The chart's PrometheusRule as Prometheus loads it: rendered by helm, never a copy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.chart.chartlib import ROOT, Render
from tools.prereq import require_tool

RUNBOOKS = ROOT / "docs" / "runbooks.md"
INSTALL_PROMETHEUS = "apt-get install prometheus (scripts/ci/install-debian-packages.sh)"

Rule = dict[str, Any]


def promtool() -> str:
    return require_tool("promtool", provided_by=INSTALL_PROMETHEUS)


def prometheus() -> str:
    return require_tool("prometheus", provided_by=INSTALL_PROMETHEUS)


def rule_groups(rendered: Render) -> list[dict[str, Any]]:
    """The `groups` of the release's PrometheusRule: what the operator hands Prometheus."""
    groups: list[dict[str, Any]] = rendered.one("PrometheusRule")["spec"]["groups"]
    return groups


def write_rule_file(rendered: Render, directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(rendered)}, sort_keys=False))
    return path


def alerts(rendered: Render) -> dict[str, Rule]:
    return {r["alert"]: r for g in rule_groups(rendered) for r in g["rules"] if "alert" in r}


def recording_rules(rendered: Render) -> list[Rule]:
    return [r for g in rule_groups(rendered) for r in g["rules"] if "record" in r]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped,
    spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's `##`/`###` sections by anchor, each with its text."""
    sections: dict[str, str] = {}
    anchor = None
    for line in RUNBOOKS.read_text().splitlines():
        heading = re.match(r"#{2,3} (.+)", line)
        if heading:
            anchor = github_anchor(heading.group(1))
            sections[anchor] = ""
        elif anchor is not None:
            sections[anchor] += line + "\n"
    return sections
