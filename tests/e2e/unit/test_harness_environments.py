"""The values the live suite installs staging and prod with render with the real chart.

A live run found the overlay replacing ingress.hosts without the file's paths, which the
chart's schema requires: every staging and prod install failed before a pod started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chart.chartlib import CHART, helm_binary, parse, run_helm
from tests.e2e.harness.environments import VALUES, Database, overrides

HOST = "app.e2e.localdev.me"
AUTH = {
    "auth.issuer": "https://issuer.e2e.invalid",
    "auth.audience": "items-api",
    "auth.jwks.secretName": "app-e2e-jwks",
    "auth.jwks.key": "jwks.json",
}


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_the_suite_overlay_renders_with_the_values_file(env: str, tmp_path: Path) -> None:
    database = Database(
        host="db.e2e.svc", service_password="s", migrator_password="m", pod_ip="10.244.0.9"
    )
    overlay, strings = overrides(
        env,
        repository="docker.io/library/service",
        tag="e2e-base",
        digest="sha256:" + "ab" * 32,
        host=HOST,
        tls_secret_name="app-e2e-tls",
        ingress_namespace="ingress-traefik",
        database=database,
        auth_values=AUTH,
    )
    overlay_file = tmp_path / "e2e-values.yaml"
    overlay_file.write_text(yaml.safe_dump(overlay), encoding="utf-8")
    sets = [arg for key, value in strings.items() for arg in ("--set-string", f"{key}={value}")]
    result = run_helm(
        helm_binary(4), "template", "app", str(CHART), "--namespace", "e2e",
        "--values", str(VALUES[env]), "--values", str(overlay_file), *sets,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    ingress = parse(result.stdout).one("Ingress", "app")
    file_paths = yaml.safe_load(VALUES[env].read_text(encoding="utf-8"))["ingress"]["hosts"][0]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == HOST
    assert [p["path"] for p in rule["http"]["paths"]] == [p["path"] for p in file_paths["paths"]]
    assert ingress["spec"]["tls"] == [{"secretName": "app-e2e-tls", "hosts": [HOST]}]
