"""The chart's tracing values: tracing.* becomes the OpenTelemetry SDK's own variables,
which the service's parser accepts; an egress rule to the collector; staging and prod
sample parentbased_traceidratio; bad values are refused. Under Helm 4 and Helm 3."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import Settings
from tests.chart.chartlib import Render, helm_binary, parse, render, run_helm, template_args

pytestmark = pytest.mark.helm

OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")  # fmt: skip
PROD_RATIO, STAGING_RATIO = "0.05", "0.5"  # documented in values/prod.yaml, staging.yaml


def env_of(rendered: Render) -> dict[str, str]:
    return {str(k): str(v) for k, v in rendered.config_map()["data"].items()}


def collector_rules(rendered: Render, port: int = 4318) -> list[dict[str, Any]]:
    rules = rendered.one("NetworkPolicy")["spec"]["egress"]
    return [r for r in rules if any(p["port"] == port for p in r.get("ports", []))]


def starts_with(data: dict[str, str]) -> Settings:
    """What a pod would start with: the service's own parser of the same variables."""
    return Settings.from_env({**data, "DATABASE_URL": "postgresql://a:b@db/app?sslmode=require"})


@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize(("env", "ratio"), [("staging", STAGING_RATIO), ("prod", PROD_RATIO)])
def test_staging_and_prod_sample_a_documented_ratio(major: int, env: str, ratio: str) -> None:
    rendered = render(helm_binary(major), env)
    data = env_of(rendered)
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert data["OTEL_TRACES_SAMPLER_ARG"] == ratio
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
    assert data["OTEL_SERVICE_NAME"] == "app"
    attributes = dict(pair.split("=") for pair in data["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes["deployment.environment.name"] == env
    assert attributes["k8s.namespace.name"] == "app"
    assert starts_with(data).tracing.enabled
    # The pods may reach the collector, in its namespace only.
    [rule] = collector_rules(rendered)
    selector = rule["to"][0]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": "observability"}


def test_dev_traces_everything_to_the_local_tempo(renders: dict[str, Render]) -> None:
    data = env_of(renders["dev"])
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://tempo.monitoring.svc.cluster.local:4318"
    assert "OTEL_TRACES_SAMPLER" not in data  # the SDK's default: parentbased_always_on
    assert "service.version=1.4.2" in data["OTEL_RESOURCE_ATTRIBUTES"]


@pytest.mark.parametrize("major", [4, 3])
def test_no_endpoint_no_variables_no_egress(major: int) -> None:
    rendered = render(helm_binary(major), "prod", ["tracing.endpoint="])
    data = env_of(rendered)
    assert not set(OTEL) & set(data), data
    assert collector_rules(rendered) == []
    assert not starts_with(data).tracing.enabled


def test_values_become_the_standard_variables(helm4: str) -> None:
    rendered = render(helm4, "prod", [
        "tracing.endpoint=https://otlp.example.com", "tracing.serviceName=items",
        "tracing.sampler=traceidratio", "tracing.ratio=1",
        "tracing.resourceAttributes.team=payments", "image.tag=2.0.1",
        "networkPolicy.collector.namespace=", "networkPolicy.collector.port=8443",
        "networkPolicy.collector.cidrs[0]=203.0.113.0/24",
    ])  # fmt: skip
    data = env_of(rendered)
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.example.com"
    assert data["OTEL_SERVICE_NAME"] == "items"
    assert (data["OTEL_TRACES_SAMPLER"], data["OTEL_TRACES_SAMPLER_ARG"]) == ("traceidratio", "1")
    assert data["OTEL_RESOURCE_ATTRIBUTES"] == (
        "deployment.environment.name=prod,k8s.namespace.name=app,service.version=2.0.1,team=payments"
    )
    assert starts_with(data).tracing.endpoint == "https://otlp.example.com/v1/traces"
    [rule] = collector_rules(rendered, 8443)
    assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize("option", ["--set", "--set-json"])
def test_the_ratio_from_the_command_line(major: int, option: str) -> None:
    """`--set` passes 0.05 as a string, `--set-json` as a number: the same variable."""
    args = [*template_args("prod"), option, "tracing.ratio=0.05"]
    result = run_helm(helm_binary(major), *args)
    assert result.returncode == 0, result.stderr
    data = env_of(parse(result.stdout))
    assert data["OTEL_TRACES_SAMPLER_ARG"] == "0.05"
    assert starts_with(data).tracing.enabled


@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (["tracing.endpoint=otel-collector:4318"], "tracing"),
        (["tracing.sampler=sometimes"], "tracing"),
        (["json:tracing.ratio=1.5"], "tracing"),
        (["tracing.ratio=1.5"], 'tracing.ratio "1.5" is not a number from 0 to 1'),
        (["tracing.ratio=5%"], 'tracing.ratio "5%" is not a number from 0 to 1'),
        (["tracing.sampler=always_on", "json:tracing.ratio=0.5"], "tracing.ratio (0.5) is only"),
        (["json:extraEnv=[{\"name\":\"OTEL_SERVICE_NAME\",\"value\":\"x\"}]"],
         "use tracing.serviceName"),
        (["networkPolicy.collector.port=0"], "collector"),
    ],
)  # fmt: skip
def test_bad_tracing_values_are_refused(sets: list[str], named: str, major: int) -> None:
    args = template_args("prod", [s for s in sets if not s.startswith("json:")])
    args += [a for s in sets if s.startswith("json:") for a in ("--set-json", s[5:])]
    result = run_helm(helm_binary(major), *args)
    assert result.returncode != 0, f"{sets} rendered"
    assert named in result.stderr.replace("/", "."), result.stderr
