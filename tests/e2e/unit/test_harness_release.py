"""The suite's helm invocation, rendered offline with the real chart and values/dev.yaml.

What the live tests install is exactly these arguments plus --wait flags, so the names
the tests look for (Service, Deployment, selectors, Job labels, TLS Secret) are checked
against the chart here, where a rename is caught without a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import release as rel
from tests.e2e.harness.helm import Helm, install_value_args
from tools.prereq import require_tool

HOST = "app-e2e.localdev.me"


def selector(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split(","))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    helm = require_tool("helm", provided_by="bash scripts/ci/install-k8s-tools.sh", env_var="HELM")
    plan = rel.ingress_plan(rel.load_values(), HOST)
    overlay = rel.write_overlay(plan, tmp_path_factory.mktemp("values"))
    text = Helm(helm, "e2e-release-x").template(
        rel.RELEASE,
        rel.CHART,
        values_files=(rel.DEV_VALUES, overlay),
        set_string=rel.image_values("service", "e2e-abc-base"),
        set_values={"replicaCount": 2},
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def test_the_ingress_moves_to_the_suite_host_with_dev_tls_secret(
    rendered: list[dict[str, Any]],
) -> None:
    ingress = only(rendered, "Ingress")
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [HOST]
    dev_tls = rel.load_values()["ingress"]["tls"][0]["secretName"]
    assert ingress["spec"]["tls"] == [{"hosts": [HOST], "secretName": dev_tls}]


def test_service_deployment_and_selectors_match_the_names_the_tests_use(
    rendered: list[dict[str, Any]],
) -> None:
    # The dev database brings a Service of its own; the app's is the one named app.
    [service] = [
        d for d in rendered if d["kind"] == "Service" and d["metadata"]["name"] == rel.SERVICE
    ]
    [port] = [p for p in service["spec"]["ports"] if p["port"] == rel.SERVICE_PORT]
    deployment = [d for d in rendered if d["kind"] == "Deployment"]
    [app] = [d for d in deployment if d["metadata"]["name"] == rel.DEPLOYMENT]
    pod_labels = app["spec"]["template"]["metadata"]["labels"]
    assert selector(rel.SERVER_SELECTOR).items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert port["targetPort"] in ("http", 8000)


def test_image_and_replicas_reach_the_deployment_and_the_migration_job(
    rendered: list[dict[str, Any]],
) -> None:
    [app] = [
        d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == rel.DEPLOYMENT
    ]
    assert app["spec"]["replicas"] == 2
    spec = app["spec"]["template"]["spec"]
    [container] = [c for c in spec["containers"] if c["name"] == "app"]
    assert container["image"] == "service:e2e-abc-base"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert [c["name"] for c in spec.get("initContainers", [])] == ["wait-for-schema"]

    job = only(rendered, "Job")
    assert (
        selector(rel.MIGRATION_SELECTOR).items()
        <= job["spec"]["template"]["metadata"]["labels"].items()
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "service:e2e-abc-base"


def test_dev_values_without_an_ingress_are_refused() -> None:
    with pytest.raises(rel.ValuesShapeError, match="no enabled `ingress`"):
        rel.ingress_plan({"ingress": {"enabled": False}}, HOST)
    with pytest.raises(rel.ValuesShapeError, match="one host and one TLS entry"):
        rel.ingress_plan({"ingress": {"enabled": True, "hosts": [], "tls": []}}, HOST)


def test_values_go_to_helm_as_strings_where_a_number_would_be_wrong(tmp_path: Path) -> None:
    args = install_value_args([tmp_path / "a.yaml"], {"image.tag": "0123"}, {"replicaCount": 2})
    assert args == [
        "--values",
        str(tmp_path / "a.yaml"),
        "--set-string",
        "image.tag=0123",
        "--set",
        "replicaCount=2",
    ]


def test_the_failing_upgrade_gives_its_job_a_deadline_inside_helms_timeout() -> None:
    """Test 4 waits for the Job's own Failed condition (its activeDeadlineSeconds plus
    slack) and gives Helm a timeout past it; the chart must render that deadline."""
    helm = require_tool("helm", provided_by="bash scripts/ci/install-k8s-tools.sh", env_var="HELM")
    text = Helm(helm, "e2e-release-x").template(
        rel.RELEASE,
        rel.CHART,
        values_files=(rel.DEV_VALUES,),
        set_string=rel.image_values("service", "e2e-abc-fails"),
        set_values=rel.failing_release_values(),
    )
    job = only([doc for doc in yaml.safe_load_all(text) if doc], "Job")
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert deadline == rel.FAILING_JOB_DEADLINE_S
    assert deadline < rel.FAILING_RELEASE_TIMEOUT_S <= 300  # minutes, not Helm's 600 s
