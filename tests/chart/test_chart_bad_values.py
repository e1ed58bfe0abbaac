"""Bad values are refused at render time, by the schema or a template `fail`, with a
message that names the field, under Helm 4 and Helm 3."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.chart.chartlib import CHART, env_args, helm_binary, run_helm, template_args

pytestmark = pytest.mark.helm


@dataclass(frozen=True)
class BadValues:
    why: str
    env: str | None  # values/<env>.yaml underneath, or chart defaults
    sets: tuple[str, ...]  # --set / --set-json (prefixed "json:") overrides
    field: str  # what the message must name, dotted


def case(why: str, env: str | None, *sets: str, field: str) -> BadValues:
    return BadValues(why, env, sets, field)


# What makes the bare chart render: a database, an image that exists and an issuer
# (production is the default).
OK_DEFAULTS = (
    "existingSecret=app-database,image.tag=1.0.0,"
    "auth.issuer=https://login.example.com,auth.audience=items-api"
)

# values/prod.yaml switched to the database by its parts (a basic-auth Secret).
BY_PARTS = (
    "existingSecret=",
    "database.credentialsSecret=app-db-service",
    "database.host=app-db-pooler-rw",
    "database.name=app",
)

CASES = [
    case("wrong type", None, OK_DEFAULTS, "replicaCount=three", field="replicaCount"),
    case("negative replicas", None, OK_DEFAULTS, "replicaCount=-1", field="replicaCount"),
    case("unknown top-level key", None, OK_DEFAULTS, "replicas=3", field="replicas"),
    case("misspelt nested key", None, OK_DEFAULTS, "image.tagg=1.0", field="tagg"),
    case("misspelt setting", None, OK_DEFAULTS, "config.LOG_LEVLE=DEBUG", field="LOG_LEVLE"),
    case(
        "setting out of range",
        None,
        OK_DEFAULTS,
        "config.LOG_LEVEL=verbose",
        field="config.LOG_LEVEL",
    ),
    case(
        "setting of the wrong type",
        None,
        OK_DEFAULTS,
        "config.GUNICORN_WORKERS=many",
        field="config.GUNICORN_WORKERS",
    ),
    case("latest tag", None, OK_DEFAULTS, "image.tag=latest", field="image.tag"),
    case("no image: neither digest nor tag", None, "existingSecret=db", field="image.digest"),
    case("no image named in dev", "dev", "image.tag=", field="image.tag"),
    case("version not a label", None, OK_DEFAULTS, "image.version=v 1", field="image.version"),
    case("malformed digest", None, OK_DEFAULTS, "image.digest=sha256:abc", field="image.digest"),
    case("prod without existingSecret", "prod", "existingSecret=", field="existingSecret"),
    case("staging without existingSecret", "staging", "existingSecret=", field="existingSecret"),
    case("prod without a digest", "prod", "image.digest=", field="image.digest"),
    case("bare chart without a database", None, field="existingSecret"),
    case(
        "bare chart without an issuer",
        None,
        "existingSecret=app-database,image.tag=1.0.0",
        field="auth.issuer",
    ),
    case(
        "privilege escalation",
        "prod",
        "containerSecurityContext.allowPrivilegeEscalation=true",
        field="containerSecurityContext.allowPrivilegeEscalation",
    ),
    case(
        "root allowed",
        "prod",
        "podSecurityContext.runAsNonRoot=false",
        field="podSecurityContext.runAsNonRoot",
    ),
    case(
        "capabilities kept",
        "prod",
        'json:containerSecurityContext.capabilities.drop=["NET_RAW"]',
        field="containerSecurityContext.capabilities.drop",
    ),
    case("privileged port", "prod", "containerPort=80", field="containerPort"),
    case(
        "database URL as env var",
        "prod",
        'json:extraEnv=[{"name":"DATABASE_URL","value":"postgresql://x"}]',
        field="extraEnv[0].name",
    ),
    case(
        "duplicate env name",
        "prod",
        'json:extraEnv=[{"name":"LOG_LEVEL","value":"DEBUG"}]',
        field="extraEnv[0].name",
    ),
    case("DEBUG outside dev", "prod", "config.DEBUG=true", field="config.DEBUG"),
    case(
        "dev database outside dev",
        "prod",
        "existingSecret=",
        "devDatabase.enabled=true",
        "devDatabase.auth.password=x",
        field="devDatabase.enabled",
    ),
    case(
        "dev database and existingSecret",
        "dev",
        "existingSecret=app-database",
        field="existingSecret",
    ),
    case(
        "dev database without password",
        "dev",
        "devDatabase.auth.password=",
        field="devDatabase.auth.password",
    ),
    case(
        "password breaking the URL",
        "dev",
        "devDatabase.auth.password=p@ss/word",
        field="devDatabase.auth.password",
    ),
    case(
        "TLS host not served",
        "prod",
        "ingress.tls[0].hosts[0]=other.example.com",
        field="ingress.tls[0].hosts",
    ),
    case("Ingress without hosts", None, OK_DEFAULTS, "ingress.enabled=true", field="ingress.hosts"),
    case(
        "HTTPRoute without a Gateway",
        None,
        OK_DEFAULTS,
        "httpRoute.enabled=true",
        field="httpRoute.parentRefs",
    ),
    case(
        "HPA min above max", "prod", "autoscaling.minReplicas=30", field="autoscaling.minReplicas"
    ),
    case(
        "ServiceMonitor without metrics",
        "prod",
        "config.METRICS_ENABLED=false",
        field="config.METRICS_ENABLED",
    ),
    case(
        "unknown Service type", None, OK_DEFAULTS, "service.type=ExternalName", field="service.type"
    ),
    case(
        "unknown rollout spread policy",
        "prod",
        "topologySpread.zone=Sometimes",
        field="topologySpread.zone",
    ),
    # The database by its parts (values/cloudnative-pg.yaml's form).
    case(
        "a URL Secret and credentials both",
        "prod",
        *BY_PARTS[1:],
        field="database.credentialsSecret",
    ),
    case("credentials without a host", "prod", *BY_PARTS, "database.host=", field="database.host"),
    case(
        "credentials without a database", "prod", *BY_PARTS, "database.name=", field="database.name"
    ),
    case(
        "credentials and migrations through them",
        "prod",
        *BY_PARTS,
        "migration.existingSecret=",
        field="migration.existingSecret",
    ),
    case("host with a port", "prod", *BY_PARTS, "database.host=db:5432", field="database.host"),
    case(
        "unknown sslmode", "prod", "config.DATABASE_SSLMODE=strict", field="config.DATABASE_SSLMODE"
    ),
    case(
        "grant role not a plain name",
        "prod",
        "config.MIGRATION_GRANT_ROLE=App-RW",
        field="config.MIGRATION_GRANT_ROLE",
    ),
    case(
        "database host as env var",
        "prod",
        'json:extraEnv=[{"name":"DATABASE_HOST","value":"db"}]',
        field="database.host",
    ),
    case(
        "database password as env var",
        "prod",
        'json:extraEnv=[{"name":"DATABASE_PASSWORD","value":"x"}]',
        field="database.credentialsSecret",
    ),
    case(
        "database at addresses and pods both",
        "prod",
        "networkPolicy.database.podLabels.cnpg\\.io/cluster=app-db",
        field="networkPolicy.database.podLabels",
    ),
    case(
        "a volume named like the credentials'",
        "prod",
        "extraVolumes[0].name=database-credentials",
        "extraVolumes[0].emptyDir.medium=Memory",
        field="extraVolumes[0].name",
    ),
]


def value_args(bad: BadValues) -> list[str]:
    """The case's values: its environment's file and its --set / --set-json overrides."""
    args = env_args(bad.env)
    for item in bad.sets:
        if item.startswith("json:"):
            args += ["--set-json", item.removeprefix("json:")]
        else:
            args += ["--set", item]
    return args


def helm_args(bad: BadValues) -> list[str]:
    return [*template_args(None), *value_args(bad)]


def named_fields(message: str) -> str:
    """Helm 4 says "at '/image/tag'", Helm 3 "image.tag": make both dotted."""
    return re.sub(r"/(\w+)", r".\1", message).replace("'.", "'")


@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize("bad", CASES, ids=[c.why for c in CASES])
def test_bad_values_are_rejected_naming_the_field(bad: BadValues, major: int) -> None:
    result = run_helm(helm_binary(major), *helm_args(bad))
    assert result.returncode != 0, f"{bad.why}: rendered without error"
    message = named_fields(result.stderr)
    assert bad.field in message, f"{bad.why}: {bad.field!r} not named in:\n{result.stderr}"


@pytest.mark.parametrize("bad", CASES, ids=[c.why for c in CASES])
def test_lint_names_the_field_without_a_parse_error(helm4: str, bad: BadValues) -> None:
    """`helm lint` logs a template's `fail` and renders on: what follows must still parse.
    (Helm 4 only: Helm 3 lints through the same template path, and test_chart_lint.py
    checks it with the chart's defaults.)"""
    result = run_helm(helm4, "lint", "--strict", str(CHART), *value_args(bad))
    output = result.stdout + result.stderr
    assert "unable to parse YAML" not in output, f"{bad.why}:\n{output}"
    assert bad.field in named_fields(output), f"{bad.why}: {bad.field!r} not named in:\n{output}"


@pytest.mark.parametrize("major", [4, 3])
def test_the_good_version_of_each_case_renders(major: int) -> None:
    """Guards the table: the base each case starts from renders, so the failure is the value."""
    for env in (None, "dev", "staging", "prod"):
        sets = ["--set", OK_DEFAULTS] if env is None else []
        result = run_helm(helm_binary(major), *template_args(env), *sets)
        assert result.returncode == 0, f"{env}: {result.stderr}"
    by_parts = helm_args(case("by parts", "prod", *BY_PARTS, field=""))
    result = run_helm(helm_binary(major), *by_parts)
    assert result.returncode == 0, f"prod by its parts: {result.stderr}"
