"""OTEL_*: an endpoint turns tracing on; every other variable the SDK reads is checked at
start, because the SDK answers a bad value with a warning and its default (a misspelt
sampler would trace every request). Every error names the variable and the fix."""

from __future__ import annotations

import pytest

from service.config import ConfigError, Settings, tracing_settings_from_env

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318"}


def test_no_endpoint_is_off_whatever_else_is_set() -> None:
    settings = tracing_settings_from_env(
        {"OTEL_TRACES_SAMPLER": "nonsense", "OTEL_SERVICE_NAME": "items"}
    )
    assert not settings.enabled  # nothing else is read without an exporter


def test_the_endpoint_resolves_as_the_exporter_resolves_it() -> None:
    assert tracing_settings_from_env(ENDPOINT).endpoint == (
        "http://otel-collector.observability:4318/v1/traces"
    )
    traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otlp.example.com/v1/traces"}
    assert tracing_settings_from_env({**ENDPOINT, **traces}).endpoint == (
        "https://otlp.example.com/v1/traces"
    )


@pytest.mark.parametrize("off", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_turned_off_on_purpose(off: dict[str, str]) -> None:
    assert not tracing_settings_from_env({**ENDPOINT, **off}).enabled


def test_the_sdks_own_values_are_accepted() -> None:
    settings = tracing_settings_from_env({
        **ENDPOINT, "OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio",
        "OTEL_TRACES_SAMPLER_ARG": "0.05", "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024", "OTEL_BSP_SCHEDULE_DELAY": "1000",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SDK_DISABLED": "false",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod, team=payments,",
    })  # fmt: skip
    assert settings.enabled


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/v1/traces"},
         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "5%"},
         "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
         "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"}, "larger than OTEL_BSP_MAX_QUEUE_SIZE (2048)"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES has 'team'"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "=x"}, "OTEL_RESOURCE_ATTRIBUTES"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
    ],
)  # fmt: skip
def test_a_bad_value_is_a_config_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tracing_settings_from_env({**ENDPOINT, **env})
    assert named in str(caught.value)


def test_settings_carry_it_and_the_service_refuses_to_start_on_a_bad_one() -> None:
    base = {"DATABASE_URL": "postgresql://a:b@127.0.0.1/app", "APP_ENV": "dev"}
    assert Settings.from_env({**base, **ENDPOINT}).tracing.enabled
    assert not Settings.from_env(base).tracing.enabled
    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER"):
        Settings.from_env({**base, **ENDPOINT, "OTEL_TRACES_SAMPLER": "always"})
