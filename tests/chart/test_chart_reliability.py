"""Staging and prod isolate their pods and limit each client at the ingress; prod names
its database's addresses instead of allowing any."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.chart.chartlib import Render, render, run_helm, template_args

pytestmark = pytest.mark.helm
DEPLOYED = ("staging", "prod")


@pytest.mark.parametrize("env", DEPLOYED)
def test_deployed_environments_render_a_network_policy(
    renders: dict[str, Render], env: str
) -> None:
    policy = renders[env].one("NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_prod_reaches_the_database_port_only_at_its_addresses(renders: dict[str, Render]) -> None:
    egress = renders["prod"].one("NetworkPolicy")["spec"]["egress"]
    database = [rule for rule in egress if {"port": 5432, "protocol": "TCP"} in rule["ports"]]
    assert database and all(rule.get("to") for rule in database), database
    for rule in database:
        for peer in rule["to"]:
            network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            assert network.prefixlen > 0, "a /0 is any address"


@pytest.mark.parametrize("env", DEPLOYED)
def test_the_ingress_limits_each_clients_rate_and_connections(
    renders: dict[str, Render], env: str
) -> None:
    annotations = renders[env].one("Ingress")["metadata"]["annotations"]
    for limit in ("limit-rps", "limit-connections"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{limit}"]) > 0, limit


def test_prod_without_database_addresses_is_refused(helm4: str) -> None:
    result = run_helm(helm4, *template_args("prod", ["networkPolicy.database.cidrs=null"]))
    assert result.returncode != 0
    assert "networkPolicy.database.cidrs is empty with config.APP_ENV=prod" in result.stderr


def test_pods_roll_when_the_charts_own_secret_changes(helm4: str) -> None:
    """The URL file is re-read on every new connection, but a pod started before a
    rotation keeps its open connections: the chart's own Secret (dev) changing must roll
    the pods, and nothing else must."""

    def pod_annotations(*sets: str) -> dict[str, str]:
        rendered = render(helm4, "dev", list(sets))
        return dict(rendered.deployment()["spec"]["template"]["metadata"]["annotations"])

    before = pod_annotations()
    assert pod_annotations() == before  # stable: no roll without a change
    rotated = pod_annotations("devDatabase.auth.password=rotated-password")
    assert rotated["checksum/secret"] != before["checksum/secret"]


@pytest.mark.parametrize("env", DEPLOYED)
def test_the_migration_job_uses_its_own_secret(renders: dict[str, Render], env: str) -> None:
    """The schema's owner (DDL) for the Job, the DML-only role for the pods."""

    def url_secret(pod_spec: dict[str, Any]) -> str:
        volume = next(v for v in pod_spec["volumes"] if v["name"] == "database-url")
        return str(volume["secret"]["secretName"])

    rendered = renders[env]
    job = url_secret(rendered.migration_job()["spec"]["template"]["spec"])
    pods = url_secret(rendered.deployment()["spec"]["template"]["spec"])
    assert (job, pods) == ("app-database-migrator", "app-database")


def test_without_a_migration_secret_the_job_uses_the_apps(helm4: str) -> None:
    rendered = render(helm4, "prod", ["migration.existingSecret="])
    volumes = rendered.migration_job()["spec"]["template"]["spec"]["volumes"]
    assert {"name": "database-url", "secret": {"secretName": "app-database", "defaultMode": 0o440,
            "items": [{"key": "DATABASE_URL", "path": "url"}]}} in volumes  # fmt: skip


def test_a_ca_bundle_is_mounted_for_verify_full_in_every_app_container(helm4: str) -> None:
    rendered = render(helm4, "prod", ["database.caSecret=database-ca-bundle"])
    for pod in (rendered.deployment(), rendered.migration_job()):
        spec = pod["spec"]["template"]["spec"]
        volume = next(v for v in spec["volumes"] if v["name"] == "database-ca")
        assert volume["secret"]["secretName"] == "database-ca-bundle"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            mount = next(m for m in container["volumeMounts"] if m["name"] == "database-ca")
            assert mount == {"name": "database-ca", "mountPath": "/run/secrets/database-ca",
                             "readOnly": True}  # fmt: skip
    plain = render(helm4, "prod")
    volumes = plain.deployment()["spec"]["template"]["spec"]["volumes"]
    assert all(v["name"] != "database-ca" for v in volumes)  # nothing without a bundle
