"""values/cloudnative-pg.yaml (docs/cloudnativepg.md): the pods reach the Pooler as the
serving role from its basic-auth Secret, the migration Job reaches the primary as the
owner from `<cluster>-app`, both with verify-full against `<cluster>-ca`; and what the
chart renders is what the service parses. With Helm 4 and Helm 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from service.config import Settings
from tests.chart.chartlib import (
    CLOUDNATIVE_PG,
    Obj,
    Render,
    containers,
    helm_binary,
    pod_specs,
    render,
)

pytestmark = pytest.mark.helm

CA_PATH = "/run/secrets/database-ca/ca.crt"
PARTS = {
    "DATABASE_HOST": "app-db-pooler-rw",
    "DATABASE_PORT": "5432",
    "DATABASE_NAME": "app",
    "DATABASE_USER_FILE": "/run/secrets/database/username",
    "DATABASE_PASSWORD_FILE": "/run/secrets/database/password",
    "DATABASE_SSLROOTCERT": CA_PATH,
}
# As CloudNativePG writes `<cluster>-app`'s `uri` (pkg/specs/secrets.go): the -rw Service
# by `<name>.<namespace>`, the password escaped by Go's url.UserPassword, no sslmode.
OWNER_URI = "postgresql://app_migrator:Zx%2F9q%3Fw@app-db-rw.app:5432/app"


@pytest.fixture(scope="module", params=[4, 3], ids=["helm4", "helm3"])
def on_cnpg(request: pytest.FixtureRequest) -> dict[str, Render]:
    helm = helm_binary(int(request.param))
    return {env: render(helm, env, extra_values=[CLOUDNATIVE_PG]) for env in ("staging", "prod")}


def env_of(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def volume(spec: Obj, name: str) -> Obj:
    (found,) = [v for v in spec["volumes"] if v["name"] == name]
    return found


def app_image_containers(rendered: Render) -> list[tuple[str, Obj, Obj]]:
    """(pod kind, pod spec, container) for wait-for-schema, app and migrate."""
    return [
        (where.split("/")[0], spec, container)
        for where, _, spec in pod_specs(rendered)
        for container in containers(spec)
        if container["name"] in {"wait-for-schema", "app", "migrate"}
    ]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_pods_use_the_serving_roles_secret_through_the_pooler(
    on_cnpg: dict[str, Render], env: str
) -> None:
    rendered = on_cnpg[env]
    served = [(s, c) for kind, s, c in app_image_containers(rendered) if kind == "Deployment"]
    assert [c["name"] for _, c in served] == ["wait-for-schema", "app"]
    for spec, container in served:
        env_vars = env_of(container)
        assert {k: env_vars.get(k) for k in PARTS} == PARTS, container["name"]
        assert "DATABASE_URL_FILE" not in env_vars
        secret = volume(spec, "database-credentials")["secret"]
        assert secret["secretName"] == "app-db-service"
        assert secret["items"] == [{"key": "username", "path": "username"},
                                   {"key": "password", "path": "password"}]  # fmt: skip
        assert volume(spec, "database-ca")["secret"] == {
            "secretName": "app-db-ca", "defaultMode": 0o444,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],  # never ca.key
        }  # fmt: skip
    assert not rendered.has("Secret"), "the chart renders no credentials"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_migration_job_uses_the_owners_uri_straight_to_the_primary(
    on_cnpg: dict[str, Render], env: str
) -> None:
    ((_, spec, container),) = [x for x in app_image_containers(on_cnpg[env]) if x[0] == "Job"]
    env_vars = env_of(container)
    assert env_vars["DATABASE_URL_FILE"] == "/run/secrets/database/url"
    assert env_vars["DATABASE_SSLROOTCERT"] == CA_PATH
    assert "DATABASE_HOST" not in env_vars, "never the Pooler: migrate holds an advisory lock"
    assert volume(spec, "database-url")["secret"]["secretName"] == "app-db-app"
    assert volume(spec, "database-url")["secret"]["items"] == [{"key": "uri", "path": "url"}]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_settings_for_verify_full_without_prepared_statements(
    on_cnpg: dict[str, Render], env: str
) -> None:
    data = on_cnpg[env].config_map()["data"]
    assert data["DATABASE_SSLMODE"] == "verify-full"
    assert data["DB_PREPARED_STATEMENTS"] == "false", "transaction pooling"
    assert data["MIGRATION_GRANT_ROLE"] == "app_rw"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_network_policy_reaches_the_clusters_pods_only(
    on_cnpg: dict[str, Render], env: str
) -> None:
    egress = on_cnpg[env].one("NetworkPolicy")["spec"]["egress"]
    to_database = [rule for rule in egress if {"port": 5432, "protocol": "TCP"} in rule["ports"]]
    assert to_database == [{
        "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "app-db"}}}],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    }]  # fmt: skip


def mounted(tmp_path: Path, path: str) -> str:
    """Where a file the kubelet mounts at `path` lives in this test."""
    return str(tmp_path / path.lstrip("/"))


def write_secrets(tmp_path: Path) -> None:
    files = {
        "/run/secrets/database/username": "app_service",  # app-db-service
        "/run/secrets/database/password": "s3rv1ce-pw",
        "/run/secrets/database/url": OWNER_URI,  # the Job's mount: app-db-app's uri
        CA_PATH: "-----BEGIN CERTIFICATE-----\n",  # app-db-ca's ca.crt
    }
    for path, content in files.items():
        target = Path(mounted(tmp_path, path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def settings_of(rendered: Render, container: Obj, tmp_path: Path) -> Settings:
    """The service's settings in `container`: the ConfigMap, then the chart's env, its
    mounted files found under tmp_path."""
    environ: dict[str, Any] = dict(rendered.config_map()["data"])
    for name, value in env_of(container).items():
        environ[name] = mounted(tmp_path, value) if value.startswith("/run/") else value
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    return Settings.from_env(environ)


def test_what_the_chart_renders_is_what_the_service_parses(
    on_cnpg: dict[str, Render], tmp_path: Path
) -> None:
    write_secrets(tmp_path)
    ca = mounted(tmp_path, CA_PATH)
    rendered = on_cnpg["prod"]
    urls = {
        container["name"]: make_url(settings_of(rendered, container, tmp_path).database_url)
        for _, _, container in app_image_containers(rendered)
    }
    tls = {"sslmode": "verify-full", "sslrootcert": ca}
    for name in ("wait-for-schema", "app"):
        url = urls[name]
        assert (url.username, url.password) == ("app_service", "s3rv1ce-pw"), name
        assert (url.host, url.port, url.database, dict(url.query)) == (
            "app-db-pooler-rw", 5432, "app", tls
        ), name  # fmt: skip
    job = urls["migrate"]
    assert (job.username, job.password) == ("app_migrator", "Zx/9q?w")
    assert (job.host, job.port, job.database, dict(job.query)) == (
        "app-db-rw.app",
        5432,
        "app",
        tls,
    )
