"""`helm lint --strict` as a newcomer and chart-testing run it: with the chart's defaults
(no values at all) and with each charts/app/ci/*-values.yaml, under Helm 4 and Helm 3.

In lint mode Helm turns a template's `fail` into a log line and keeps rendering, so the
templates must stay valid YAML after the chart's own refusal: lint with the defaults
passes, and says only what the chart says (an image, a database and an issuer are
required), never a YAML parse error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart.chartlib import CHART, RELEASE, helm_binary, parse, run_helm

pytestmark = pytest.mark.helm

HELM_MAJORS = (4, 3)
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))

# How each Helm major logs a `fail` in lint mode.
FAIL_LINE = re.compile(r'level=INFO msg="funcMap fail" message="(.*)"$|\[INFO\] Fail: (.*)$')
# What `helm lint` itself prints for a chart it finds no fault with.
LINT_OWN_LINES = re.compile(
    r"==> Linting .*"
    r"|\[INFO\] Chart\.yaml: icon is recommended"
    r"|1 chart\(s\) linted, 0 chart\(s\) failed"
)


def lint(major: int, *values: Path) -> tuple[list[str], list[str]]:
    """Lint the chart; (the chart's `fail` messages, every other line of output)."""
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["--values", str(path)]
    result = run_helm(helm_binary(major), *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    refusals, others = [], []
    for line in filter(None, (line.strip() for line in output.splitlines())):
        if found := FAIL_LINE.search(line):
            refusals.append(found[1] or found[2])
        elif not LINT_OWN_LINES.fullmatch(line):
            others.append(line)
    return refusals, others


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_lint_with_the_defaults_says_only_what_the_chart_requires(major: int) -> None:
    refusals, others = lint(major)
    assert others == [], "helm lint printed more than the chart's own messages"
    assert any(r.startswith("image.digest or image.tag is required") for r in refusals), refusals
    assert any(r.startswith("existingSecret is required") for r in refusals), refusals


def test_there_are_ci_values_files() -> None:
    names = [path.name for path in CI_VALUES]
    assert len(names) >= 2, f"charts/app/ci/ holds {names}"


@pytest.mark.parametrize("values", CI_VALUES, ids=[path.name for path in CI_VALUES])
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_lint_strict_passes_with_each_ci_values_file(major: int, values: Path) -> None:
    refusals, others = lint(major, values)
    assert refusals == [], f"{values.name} is refused by the chart"
    assert others == [], f"helm lint found faults with {values.name}"


def test_the_ci_values_files_render_every_template_the_same_with_both_helms() -> None:
    """Lint only checks what renders: between them the ci files render every template."""
    sources: set[str] = set()
    for values in CI_VALUES:
        outputs = []
        for major in HELM_MAJORS:
            args = ["template", RELEASE, str(CHART), "--values", str(values)]
            result = run_helm(helm_binary(major), *args)
            assert result.returncode == 0, f"{values.name}, Helm {major}:\n{result.stderr}"
            outputs.append(result.stdout)
        assert parse(outputs[0]) == parse(outputs[1]), f"{values.name}: Helm 3 and 4 differ"
        sources |= set(re.findall(rf"^# Source: {CHART.name}/(templates/\S+)$", outputs[0], re.M))
    templates = {str(path.relative_to(CHART)) for path in (CHART / "templates").rglob("*.yaml")}
    assert templates - sources == set(), "no ci/*-values.yaml renders these templates"
