"""Every rendered object against the Kubernetes schemas of each minor in Chart.yaml's
kubeVersion range, strictly (unknown fields are errors, as the API server's strict field
validation makes them under Helm 4's server-side apply)."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from tests.chart.chartlib import CHART, PLATFORM_KNOBS, Render, render

pytestmark = pytest.mark.helm

# Custom resources: kubernetes-validate ships only the built-in API's schemas. Their
# shape is asserted in test_chart_objects.py instead.
CUSTOM_RESOURCE_GROUPS = {"monitoring.coreos.com", "gateway.networking.k8s.io"}

# Every optional object and switch on, so the schemas see every template.
EVERYTHING = [
    "httpRoute.enabled=true",
    "httpRoute.parentRefs[0].name=public",
    "migration.argocdSyncWaves=true",
    "migration.ttlSecondsAfterFinished=3600",
    "extraEnv[0].name=FEATURE_FLAG",
    "extraEnv[0].value=on",
    "imagePullSecrets[0].name=registry",
    "migration.argocdHook=true",
    *PLATFORM_KNOBS,
    "podDisruptionBudget.minAvailable=2",
    "podSecurityContext.supplementalGroups[0]=2000",
    "podSecurityContext.appArmorProfile.type=RuntimeDefault",
    "resources.limits.ephemeral-storage=1Gi",
    "networkPolicy.dns.cidrs[0]=169.254.20.10/32",
    "networkPolicy.ingressControllerCidrs[0]=10.0.0.0/16",
]


def supported_minors() -> list[str]:
    """Every minor from kubeVersion's lower bound to the newest kubernetes-validate ships.

    kubeVersion has no upper bound (a managed cluster's own upgrade must not break a sync),
    so the newest schemas available stand in for "the future".
    """
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    match = re.fullmatch(r">=1\.(\d+)\.0-0", chart["kubeVersion"])
    assert match, f"kubeVersion {chart['kubeVersion']!r}: expected '>=1.A.0-0', no upper bound"
    low = int(match[1])
    newest = max(int(v.split(".")[1]) for v in all_versions() if v.startswith("1."))
    assert low <= 30 and newest >= 34, "the chart must support at least Kubernetes 1.30-1.34"
    return [f"1.{minor}" for minor in range(low, newest + 1)]


MINORS = supported_minors()


@pytest.fixture(scope="module")
def schema_renders(deployments: dict[str, Render], helm4: str) -> dict[str, Render]:
    return {**deployments, "prod+everything": render(helm4, "prod", EVERYTHING)}


def is_custom_resource(obj: dict[str, object]) -> bool:
    return str(obj["apiVersion"]).split("/")[0] in CUSTOM_RESOURCE_GROUPS


def test_kubernetes_validate_ships_every_supported_minor() -> None:
    shipped = {".".join(v.split(".")[:2]) for v in all_versions()}
    missing = [m for m in MINORS if m not in shipped]
    assert not missing, (
        f"kubernetes-validate has no schemas for {missing}: upgrade it in the dev lock or "
        "raise kubeVersion's lower bound in charts/app/Chart.yaml"
    )


@pytest.mark.parametrize("minor", MINORS)
def test_every_object_is_valid_for_minor(schema_renders: dict[str, Render], minor: str) -> None:
    errors = []
    for name, rendered in schema_renders.items():
        for obj in rendered.objects:
            if is_custom_resource(obj):
                continue
            where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
            try:
                used = kubernetes_validate.validate(obj, f"{minor}.0", strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")
                continue
            # kubernetes-validate falls back to an older schema when a minor is missing.
            assert used == minor, f"{where} was validated against {used}, not {minor}"
    assert not errors, "\n".join(errors)


def test_only_known_custom_resources_skip_schema_validation(
    schema_renders: dict[str, Render],
) -> None:
    skipped = {
        o["kind"] for r in schema_renders.values() for o in r.objects if is_custom_resource(o)
    }
    # PrometheusRule's spec is what Prometheus loads: promtool checks it (tests/monitoring).
    assert skipped == {"ServiceMonitor", "HTTPRoute", "PrometheusRule"}


def test_strict_validation_rejects_an_unknown_field(renders: dict[str, Render]) -> None:
    """The check above can fail: a misspelt field in a real Deployment is rejected."""
    deployment = copy.deepcopy(renders["prod"].deployment())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, f"{MINORS[0]}.0", strict=True)
