"""`make monitoring` (tools/localmonitoring.py) without a cluster: the pinned stack is
configured to pick up this chart's objects, and the objects it applies are the chart's;
the pinned Tempo receives what the dev release sends, and Grafana links exemplars to it."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import parse
from tools import localmonitoring

pytestmark = pytest.mark.helm


def stack_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(localmonitoring.STACK_VALUES.read_text())
    return values


def test_the_stack_is_pinned_and_waited_for() -> None:
    args = localmonitoring.stack_install_args("kind-app-local")
    assert args[:4] == ["upgrade", "--install", "monitoring", localmonitoring.STACK_CHART]
    assert args[args.index("--version") + 1] == localmonitoring.STACK_VERSION
    assert localmonitoring.STACK_VERSION.count(".") == 2  # an exact version, not a range
    assert args[args.index("--values") + 1] == str(localmonitoring.STACK_VALUES)
    assert "--wait" in args and args[args.index("--kube-context") + 1] == "kind-app-local"


def test_tempo_is_pinned_and_where_the_dev_release_sends_its_spans(helm4: str) -> None:
    args = localmonitoring.tempo_install_args("kind-app-local")
    assert args[:4] == ["upgrade", "--install", "tempo", localmonitoring.TEMPO_CHART]
    assert args[args.index("--version") + 1] == localmonitoring.TEMPO_VERSION
    assert localmonitoring.TEMPO_VERSION.count(".") == 2
    assert args[args.index("--namespace") + 1] == localmonitoring.STACK_NAMESPACE
    assert "--wait" in args
    tempo: dict[str, Any] = yaml.safe_load(localmonitoring.TEMPO_VALUES.read_text())
    service = tempo["fullnameOverride"]
    # The dev release exports to that Service's OTLP/HTTP port, in the stack's namespace.
    rendered = parse(run(helm4, "template", "app", str(localmonitoring.APP_CHART),
                         "--values", str(localmonitoring.DEV_VALUES), "--set", "image.tag=x",
                         "--show-only", "templates/configmap.yaml"))  # fmt: skip
    endpoint = rendered.one("ConfigMap")["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == f"http://{service}.{localmonitoring.STACK_NAMESPACE}.svc.cluster.local:4318"


def test_grafana_links_latency_exemplars_to_tempo() -> None:
    grafana = stack_values()["grafana"]
    [tempo] = grafana["additionalDataSources"]
    assert tempo["type"] == "tempo" and tempo["url"].startswith("http://tempo.monitoring.")
    destinations = grafana["sidecar"]["datasources"]["exemplarTraceIdDestinations"]
    assert destinations == {"datasourceUid": tempo["uid"], "traceIdLabelName": "trace_id"}
    # Prometheus drops the exemplars of a scrape unless told to keep them.
    assert "exemplar-storage" in stack_values()["prometheus"]["prometheusSpec"]["enableFeatures"]


def test_the_stack_selects_objects_of_other_releases() -> None:
    """Without these the operator only selects objects labelled with its own release."""
    spec = stack_values()["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["ruleSelectorNilUsesHelmValues"] is False


def test_grafana_loads_the_charts_dashboard(helm4: str) -> None:
    sidecar = stack_values()["grafana"]["sidecar"]["dashboards"]
    rendered = parse(run(helm4, *localmonitoring.app_objects_args()))
    dashboard = rendered.one("ConfigMap")
    assert sidecar["enabled"] is True and sidecar["searchNamespace"] == "ALL"
    assert dashboard["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert "adminPassword" not in stack_values()["grafana"]  # generated, never in a file


@pytest.mark.parametrize("helm_fixture", ["helm4", "helm3"])
def test_applies_exactly_the_charts_monitoring_objects(
    helm_fixture: str, request: pytest.FixtureRequest
) -> None:
    helm = request.getfixturevalue(helm_fixture)
    rendered = parse(run(helm, *localmonitoring.app_objects_args("app")))
    assert sorted(o["kind"] for o in rendered.objects) == [
        "ConfigMap", "PrometheusRule", "ServiceMonitor",
    ]  # fmt: skip
    assert {o["metadata"]["namespace"] for o in rendered.objects} == {"app"}
    # The ServiceMonitor selects the Service the dev release creates.
    selector = rendered.one("ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/instance"] == "app"


def test_up_installs_then_applies_then_says_how_to_look(
    monkeypatch: pytest.MonkeyPatch, helm4: str
) -> None:
    calls: list[tuple[str, ...]] = []

    def fake_run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(("run", *args))
        out = run(helm4, *args[1:]) if args[1] == "template" else ""
        return subprocess.CompletedProcess(args, 0, out, "")

    def fake_kubectl(context: str, *args: str, input_text: str | None = None) -> str:
        calls.append(("kubectl", context, *args, input_text or ""))
        return ""

    monkeypatch.setattr(localmonitoring, "run", fake_run)
    monkeypatch.setattr(localmonitoring, "kubectl", fake_kubectl)
    monkeypatch.setattr(localmonitoring, "ensure_namespace", lambda *a: calls.append(("ns",)))
    monkeypatch.setattr(localmonitoring, "tool", lambda name: name)
    said: list[str] = []
    localmonitoring.up("kind-app-local", "app", log=said.append)
    assert calls[0][1:4] == ("helm", "upgrade", "--install")
    assert calls[1][1:5] == ("helm", "upgrade", "--install", "tempo")
    assert calls[2][1:3] == ("helm", "template")
    applied = calls[-1]
    assert applied[:4] == ("kubectl", "kind-app-local", "apply", "--namespace")
    assert "kind: PrometheusRule" in applied[-1]
    assert "port-forward service/monitoring-grafana" in said[-1]


def run(helm: str, *args: str) -> str:
    result = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout
