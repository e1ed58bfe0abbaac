"""No secret in rendered manifests: the dev database password lives only in the dev-only
Secret, and staging/prod renders hold no credential at all (the URL is mounted from
`existingSecret` as a file). The image side is tests/image/test_image_secrets.py."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.chart.chartlib import run_helm, template_args
from tools.prereq import require_tool

pytestmark = pytest.mark.helm

TEST_PASSWORD = "Zq7-test-password-never-leaks"
CREDENTIAL_URL = re.compile(r"postgres(ql)?(\+\w+)?://[^\s/:@]+:[^\s/@]+@")


@pytest.fixture(scope="module")
def helm() -> str:
    return require_tool("helm", provided_by="bash scripts/ci/install-k8s-tools.sh", env_var="HELM")


def test_dev_password_appears_only_in_the_dev_secret(helm: str) -> None:
    result = run_helm(helm, *template_args("dev", [f"devDatabase.auth.password={TEST_PASSWORD}"]))
    assert result.returncode == 0, result.stderr
    holders = [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in yaml.safe_load_all(result.stdout)
        if doc and TEST_PASSWORD in yaml.safe_dump(doc)
    ]
    assert holders and all(h.startswith("Secret/") for h in holders), holders


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_renders_hold_no_credential(helm: str, env: str) -> None:
    result = run_helm(helm, *template_args(env))
    assert result.returncode == 0, result.stderr
    assert not CREDENTIAL_URL.search(result.stdout)
    assert TEST_PASSWORD not in result.stdout
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in docs:
        assert "password" not in yaml.safe_dump(doc.get("data", {})).lower()
