"""The chart's access control: auth.* values end up as AUTH_* settings, a mounted JWKS, an
egress rule to the issuer, routes to /api and /openapi.json only; staging and prod renders
refuse to go without an issuer. Under Helm 4 and Helm 3."""

from __future__ import annotations

from typing import Any

import pytest

from service.config import Settings
from tests.chart.chartlib import Render, helm_binary, render, run_helm, template_args

pytestmark = pytest.mark.helm

ISSUER = "https://login.example.com/realms/items"


def env_of(rendered: Render) -> dict[str, str]:
    return {str(k): str(v) for k, v in rendered.config_map()["data"].items()}


def egress_ports(rendered: Render) -> list[Any]:
    policy = rendered.one("NetworkPolicy")
    return [port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_values_configure_an_issuer_the_service_accepts(
    renders: dict[str, Render], env: str
) -> None:
    data = env_of(renders[env])
    assert data["AUTH_ISSUER"].startswith("https://") and data["AUTH_AUDIENCE"]
    assert data["AUTH_DISABLED"] == "false" and "AUTH_JWKS_FILE" not in data
    # What the pods would start with: the service's own parser accepts it.
    settings = Settings.from_env(
        {**data, "DATABASE_URL": "postgresql://a:b@db/app?sslmode=require"}
    )
    assert settings.auth.enabled
    assert 443 in egress_ports(renders[env])  # the key fetch is not silently blocked


def test_the_owner_claim_reaches_the_service(helm4: str) -> None:
    data = env_of(render(helm4, "prod", ["auth.ownerClaim=tenant_id"]))
    assert data["AUTH_OWNER_CLAIM"] == "tenant_id"
    settings = Settings.from_env(
        {**data, "DATABASE_URL": "postgresql://a:b@db/app?sslmode=require"}
    )
    assert settings.auth.owner_claim == "tenant_id"
    for wrong in ("two words", "aud"):  # `aud`: every caller one owner (service/config.py)
        refused = run_helm(helm4, *template_args("prod", [f"auth.ownerClaim={wrong}"]))
        assert refused.returncode != 0 and "ownerClaim" in refused.stderr, wrong


def test_dev_stays_anonymous(renders: dict[str, Render]) -> None:
    data = env_of(renders["dev"])
    assert data["AUTH_ISSUER"] == "" and data["APP_ENV"] == "dev"


@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize(
    ("env", "sets", "named"),
    [
        ("prod", ["auth.issuer="], "auth.issuer and auth.audience are required"),
        ("staging", ["auth.audience="], "auth.issuer and auth.audience are required"),
        ("prod", ["auth.issuer=http://login.example.com"], "auth.issuer"),
        ("prod", ["auth.disabled=true"], "auth.disabled=true and auth.issuer"),
        ("prod", ["auth.jwks.secretName=a", "auth.jwks.configMapName=b"], "auth.jwks.secretName"),
        ("prod", ["ingress.hosts[0].host=app.example.com", "ingress.hosts[0].paths[0].path=/",
                  "ingress.hosts[0].paths[0].pathType=Prefix", "ingress.tls=null"], "only /api/"),
        ("prod", ['json:extraEnv=[{"name":"AUTH_ISSUER","value":"x"}]'], "auth.issuer"),
    ],
)  # fmt: skip
def test_bad_auth_values_are_refused(env: str, sets: list[str], named: str, major: int) -> None:
    args = template_args(env, [s for s in sets if not s.startswith("json:")])
    args += [a for s in sets if s.startswith("json:") for a in ("--set-json", s[5:])]
    result = run_helm(helm_binary(major), *args)
    assert result.returncode != 0, f"{sets} rendered"
    assert named in result.stderr.replace("/auth/issuer", "auth.issuer"), result.stderr


@pytest.mark.parametrize("major", [4, 3])
def test_disabled_on_purpose_renders_without_an_issuer(major: int) -> None:
    result = run_helm(
        helm_binary(major),
        *template_args("prod", ["auth.issuer=", "auth.audience=", "auth.disabled=true"]),
    )
    assert result.returncode == 0, result.stderr
    assert 'AUTH_DISABLED: "true"' in result.stdout and "AUTH_ISSUER" not in result.stdout


@pytest.mark.parametrize("source", ["secretName", "configMapName"])
def test_a_mounted_jwks_becomes_auth_jwks_file_and_needs_no_egress(helm4: str, source: str) -> None:
    rendered = render(helm4, "prod", [f"auth.jwks.{source}=issuer-keys"])
    data = env_of(rendered)
    assert data["AUTH_JWKS_FILE"] == "/run/secrets/auth/jwks.json"
    pod = rendered.deployment()["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "auth-jwks"]
    kind = "secret" if source == "secretName" else "configMap"
    name_key = "secretName" if kind == "secret" else "name"
    assert volume[kind][name_key] == "issuer-keys"
    assert volume[kind]["items"] == [{"key": "jwks.json", "path": "jwks.json"}]
    for container in pod["containers"]:
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["auth-jwks"]["mountPath"] == "/run/secrets/auth"
        assert mounts["auth-jwks"]["readOnly"] is True
    assert 443 not in egress_ports(rendered)


def test_the_issuer_egress_rule_can_be_narrowed(helm4: str) -> None:
    rendered = render(
        helm4,
        "prod",
        ["networkPolicy.issuer.cidrs[0]=203.0.113.0/24", "networkPolicy.issuer.port=8443"],
    )
    rules = rendered.one("NetworkPolicy")["spec"]["egress"]
    [rule] = [r for r in rules if any(p["port"] == 8443 for p in r.get("ports", []))]
    assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_ingress_routes_only_the_api_and_its_document(
    renders: dict[str, Render], env: str
) -> None:
    ingress = renders[env].one("Ingress")
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {"/api/", "/openapi.json"}


def test_ingress_hosts_without_paths_get_the_public_paths(helm4: str) -> None:
    rendered = render(helm4, "prod", ["ingress.hosts[0].host=api.example.com", "ingress.tls=null"])
    [rule] = rendered.one("Ingress")["spec"]["rules"]
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [
        ("/api/", "Prefix"),
        ("/openapi.json", "Exact"),
    ]


def test_the_http_route_routes_only_the_api_and_its_document(helm4: str) -> None:
    rendered = render(
        helm4,
        "prod",
        ["httpRoute.enabled=true", "httpRoute.parentRefs[0].name=public",
         "httpRoute.hostnames[0]=app.example.com"],
    )  # fmt: skip
    [rule] = rendered.one("HTTPRoute")["spec"]["rules"]
    assert [m["path"] for m in rule["matches"]] == [
        {"type": "PathPrefix", "value": "/api"},
        {"type": "Exact", "value": "/openapi.json"},
    ]
