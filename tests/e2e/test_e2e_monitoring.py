"""The local monitoring loop on a live kind cluster: `make monitoring`'s pinned
kube-prometheus-stack scrapes a release with the chart's ServiceMonitor (target up) and
loads its PrometheusRule (every alert of the chart)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.harness import release as rel
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.commands import run
from tests.e2e.harness.helm import Helm
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import BuiltImage, E2ETools, restricted_namespace
from tests.e2e.harness.prometheus_api import get_api, release_rules_loaded, release_target_up
from tests.e2e.harness.waiting import NotYet, wait_until
from tools import localmonitoring

# kube-prometheus-stack comes from its chart repository and its images from public
# registries: our CI machines, which build their cluster from source, cannot run this.
pytestmark = [pytest.mark.e2e, pytest.mark.internet]

MONITORING_SETS = {
    "serviceMonitor.enabled": "true",
    "prometheusRule.enabled": "true",
    "grafanaDashboard.enabled": "true",
    "ingress.enabled": "false",
}


@pytest.fixture(scope="module")
def stack(e2e_cluster: E2ECluster, e2e_tools: E2ETools) -> None:
    """The stack exactly as `make monitoring` installs it (pinned chart, local values)."""
    args = localmonitoring.stack_install_args(e2e_cluster.context, timeout="15m")
    run([e2e_tools.helm, *args, f"--kubeconfig={e2e_cluster.kubeconfig}"], timeout=1200)


@pytest.fixture(scope="module")
def monitored_release(
    stack: None,
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_run_id: str,
    base_image: BuiltImage,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    namespace = f"e2e-monitoring-{e2e_run_id}"
    with restricted_namespace(e2e_kubectl, namespace, request):
        helm = Helm(e2e_tools.helm, namespace, e2e_cluster.kubeconfig)
        helm.upgrade_install(
            rel.RELEASE, rel.CHART, values_files=(rel.DEV_VALUES,),
            set_string=rel.image_values(base_image.repository, base_image.tag),
            set_values=MONITORING_SETS,
        )  # fmt: skip
        yield namespace


def test_prometheus_scrapes_the_release(monitored_release: str, e2e_kubectl: Kubectl) -> None:
    def target_up() -> dict[str, object]:
        targets = get_api(e2e_kubectl, localmonitoring.STACK_NAMESPACE,
                          localmonitoring.PROMETHEUS_SERVICE, 9090, "/api/v1/targets")  # fmt: skip
        return release_target_up(targets, monitored_release, rel.RELEASE)

    wait_until(target_up, what="the release's /metrics target up in Prometheus",
               timeout=300, interval=5, retry_on=(NotYet,))  # fmt: skip


def test_prometheus_loads_every_alert_of_the_chart(
    monitored_release: str, e2e_kubectl: Kubectl, e2e_tools: E2ETools
) -> None:
    rendered = run(
        [e2e_tools.helm, "template", rel.RELEASE, str(rel.CHART), "--values", str(rel.DEV_VALUES),
         *(arg for k, v in MONITORING_SETS.items() for arg in ("--set", f"{k}={v}")),
         "--show-only", "templates/prometheusrule.yaml"],
        timeout=120,
    ).stdout  # fmt: skip
    spec = yaml.safe_load(rendered)["spec"]
    alerts = {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}

    def loaded() -> set[str]:
        rules = get_api(e2e_kubectl, localmonitoring.STACK_NAMESPACE,
                        localmonitoring.PROMETHEUS_SERVICE, 9090, "/api/v1/rules")  # fmt: skip
        return release_rules_loaded(rules, monitored_release, rel.RELEASE, alerts)

    assert wait_until(loaded, what="the chart's alerts loaded in Prometheus",
                      timeout=300, interval=5, retry_on=(NotYet,)) >= alerts  # fmt: skip
