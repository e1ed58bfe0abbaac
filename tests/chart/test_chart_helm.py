"""`helm lint --strict` and `helm template` for every values file, with Helm 4 and Helm 3."""

from __future__ import annotations

import re

import pytest

from tests.chart.chartlib import (
    CHART,
    ENVIRONMENTS,
    NAMESPACE,
    RELEASE,
    Render,
    env_args,
    helm_binary,
    parse,
    render,
    run_helm,
    template_args,
)

pytestmark = pytest.mark.helm

HELM_MAJORS = (4, 3)

# What each environment must deploy; an object silently dropping out of a render (a
# typo in an `if`) fails here.
EXPECTED_KINDS = {
    "dev": {
        "ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "StatefulSet",
        "Job", "Ingress", "Pod",
    },
    "staging": {
        "ServiceAccount", "ConfigMap", "Service", "Deployment", "Job", "Ingress",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
        "PrometheusRule", "Pod",
    },
}  # fmt: skip
EXPECTED_KINDS["prod"] = EXPECTED_KINDS["staging"]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_installed_helm_is_the_expected_major(major: int) -> None:
    result = run_helm(helm_binary(major), "version", "--short")
    assert result.returncode == 0, result.stderr
    version = re.match(r"v(\d+)\.(\d+)", result.stdout.strip())
    assert version, result.stdout
    assert int(version[1]) == major
    if major == 3:
        assert int(version[2]) >= 17, "the chart supports Helm 3.17+: test with that"


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_lint_strict_passes(major: int, env: str) -> None:
    result = run_helm(helm_binary(major), "lint", "--strict", str(CHART), *env_args(env))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "[ERROR]" not in output
    assert "[WARNING]" not in output


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_template_renders_every_expected_object(major: int, env: str) -> None:
    rendered = render(helm_binary(major), env)
    assert rendered.kinds() == EXPECTED_KINDS[env]
    for obj in rendered.objects:
        assert obj["metadata"]["namespace"] == NAMESPACE, f"{obj['kind']} has no namespace"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_3_and_helm_4_render_the_same_objects(
    helm3: str, renders: dict[str, Render], env: str
) -> None:
    assert render(helm3, env).objects == renders[env].objects


def test_every_optional_object_renders_with_both_helms() -> None:
    everything = [
        "httpRoute.enabled=true",
        "httpRoute.parentRefs[0].name=public",
        "httpRoute.hostnames[0]=app.example.com",
        "migration.argocdSyncWaves=true",
        "migration.ttlSecondsAfterFinished=3600",
    ]
    renders = [render(helm_binary(major), "prod", everything) for major in HELM_MAJORS]
    assert renders[0].objects == renders[1].objects
    assert {"HTTPRoute", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= renders[0].kinds()
    assert renders[0].one("ConfigMap", f"{RELEASE}-grafana-dashboard")


def test_notes_print_the_port_forward_command_and_url(helm4: str) -> None:
    # Only Helm 4 renders NOTES without a cluster (Helm 3.17's client dry run still dials
    # one); `helm3 lint` above renders NOTES.txt too, so a template error there fails.
    args = template_args("dev")
    args[0] = "install"
    result = run_helm(helm4, *args, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl --namespace {NAMESPACE} port-forward service/{RELEASE} 8080:80" in notes
    assert "http://127.0.0.1:8080/readyz" in notes
    assert "https://app.localdev.me/" in notes
    assert "app.kubernetes.io/component=migration" in notes


def test_render_is_deterministic(helm4: str, renders: dict[str, Render]) -> None:
    """GitOps renders on every sync: nothing may differ between two renders."""
    for env in ENVIRONMENTS:
        again = run_helm(helm4, *template_args(env))
        assert parse(again.stdout) == renders[env]
