"""The monitoring stack of the local loop: kube-prometheus-stack on the kind cluster,
configured to pick up the app chart's ServiceMonitor, PrometheusRule and dashboard, and
Grafana Tempo, where the dev release sends its traces (values/dev.yaml), as a Grafana
data source that the dashboard's latency exemplars link to.

`make monitoring` runs `python -m tools.localmonitoring up`: it installs the pinned stack
and Tempo (idempotent: `helm upgrade --install`) and applies the chart's three monitoring objects,
rendered from values/dev.yaml, into the app's namespace. They are applied beside the
release rather than through it, so `make dev` (skaffold) and `make deploy ENV=dev` need no
CRDs and keep working on a cluster without the stack; they select the release's Service
by its labels, whichever command installed it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.localcluster import (
    APP_NAMESPACE,
    LocalClusterError,
    Log,
    current_context,
    ensure_namespace,
    kubectl,
    require_kind_context,
    run,
    tool,
)

ROOT = Path(__file__).resolve().parent.parent
# kube-prometheus-stack 88.5.3 (Prometheus Operator v0.93.1); its OCI artifact on ghcr.io.
STACK_CHART = "oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack"
STACK_VERSION = "88.5.3"
STACK_RELEASE = "monitoring"
STACK_NAMESPACE = "monitoring"
STACK_VALUES = ROOT / "local" / "monitoring-values.yaml"
# Service names follow fullnameOverride in local/monitoring-values.yaml.
PROMETHEUS_SERVICE = "monitoring-prometheus"
GRAFANA_SERVICE = "monitoring-grafana"
# Grafana Tempo 2.10.8 in single-binary mode (chart 2.2.4, from the grafana-community
# charts, where grafana/helm-charts moved it in 2026); its OCI artifact on ghcr.io.
TEMPO_CHART = "oci://ghcr.io/grafana-community/helm-charts/tempo"
TEMPO_VERSION = "2.2.4"
TEMPO_RELEASE = "tempo"
TEMPO_VALUES = ROOT / "local" / "tempo-values.yaml"
APP_CHART = ROOT / "charts" / "app"
APP_RELEASE = "app"
DEV_VALUES = ROOT / "values" / "dev.yaml"
MONITORING_TEMPLATES = (
    "templates/servicemonitor.yaml",
    "templates/prometheusrule.yaml",
    "templates/grafana-dashboard.yaml",
)


def stack_install_args(context: str, *, timeout: str = "10m") -> list[str]:
    """`helm upgrade --install` of the pinned stack, waiting until it runs."""
    return [
        "upgrade", "--install", STACK_RELEASE, STACK_CHART, "--version", STACK_VERSION,
        "--namespace", STACK_NAMESPACE, "--create-namespace", "--values", str(STACK_VALUES),
        "--kube-context", context, "--wait", f"--timeout={timeout}",
    ]  # fmt: skip


def tempo_install_args(context: str, *, timeout: str = "5m") -> list[str]:
    """`helm upgrade --install` of the pinned Tempo, beside the stack, waiting until it runs."""
    return [
        "upgrade", "--install", TEMPO_RELEASE, TEMPO_CHART, "--version", TEMPO_VERSION,
        "--namespace", STACK_NAMESPACE, "--create-namespace", "--values", str(TEMPO_VALUES),
        "--kube-context", context, "--wait", f"--timeout={timeout}",
    ]  # fmt: skip


def app_objects_args(namespace: str = APP_NAMESPACE) -> list[str]:
    """`helm template` of the chart's monitoring objects for the dev release."""
    args = ["template", APP_RELEASE, str(APP_CHART), "--namespace", namespace,
            "--values", str(DEV_VALUES),
            "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,"
                     "grafanaDashboard.enabled=true",
            # The chart refuses to render without an image; none of the three objects
            # applied here names one, so any tag will do.
            "--set", "image.tag=unused-by-monitoring-objects"]  # fmt: skip
    for template in MONITORING_TEMPLATES:
        args += ["--show-only", template]
    return args


def install_stack(context: str, log: Log = print) -> None:
    log(f"installing kube-prometheus-stack {STACK_VERSION} into {context}/{STACK_NAMESPACE}")
    run([tool("helm"), *stack_install_args(context)], timeout=900)


def install_tempo(context: str, log: Log = print) -> None:
    log(f"installing Grafana Tempo (chart {TEMPO_VERSION}) into {context}/{STACK_NAMESPACE}")
    run([tool("helm"), *tempo_install_args(context)], timeout=600)


def apply_app_objects(context: str, namespace: str = APP_NAMESPACE, log: Log = print) -> str:
    manifest = run([tool("helm"), *app_objects_args(namespace)]).stdout
    ensure_namespace(context, namespace)
    log(f"applying the app's ServiceMonitor, PrometheusRule and dashboard to {namespace}")
    kubectl(context, "apply", "--namespace", namespace, "-f", "-", input_text=manifest)
    return manifest


def next_steps(context: str) -> str:
    return "\n".join((
        "monitoring is up. Deploy the app (`make dev` or `make deploy ENV=dev`), then:",
        f"  Grafana:    kubectl --context {context} -n {STACK_NAMESPACE} port-forward "
        f"service/{GRAFANA_SERVICE} 3000:80   (make grafana)",
        "              http://127.0.0.1:3000 -> Dashboards -> 'Python service (Flask + gunicorn)'",
        "              the latency panel's dots are exemplars: each links to its trace in Tempo",
        "              (Explore -> Tempo searches every trace the dev release sent)",
        f"  Prometheus: kubectl --context {context} -n {STACK_NAMESPACE} port-forward "
        f"service/{PROMETHEUS_SERVICE} 9090:9090   (make prometheus)",
    ))  # fmt: skip


def up(context: str, namespace: str = APP_NAMESPACE, log: Log = print) -> None:
    install_stack(context, log)
    install_tempo(context, log)
    apply_app_objects(context, namespace, log)
    log(next_steps(context))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localmonitoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up", help="install the stack and apply the app's objects")
    up_parser.add_argument("--namespace", default=APP_NAMESPACE)
    args = parser.parse_args(argv)
    try:
        context = current_context()
        require_kind_context(context, "`make monitoring`")
        up(context, args.namespace)
    except LocalClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
