"""The optional Kyverno policy (policies/kyverno-verify-images.yaml), offline: valid against
Kyverno's ClusterPolicy CRD schema with unknown fields refused (as `kubectl apply
--validate=strict` would), and naming exactly the identity release.yml signs with.

No cluster or Kyverno runs here: whether Kyverno admits a signed Pod is not tested.
"""

from __future__ import annotations

import copy
import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.crd_schemas import load_strict

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "kyverno-verify-images.yaml"
# Trimmed from Kyverno's own CRD; its $comment names the release and commit it came from.
SCHEMA = Path(__file__).parent / "schemas" / "kyverno-clusterpolicy-v1.json"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
EXAMPLE_REPOSITORY = "acme/service"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = load_strict(SCHEMA)
    return loaded


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(POLICY.read_text())
    return loaded


def test_policy_is_a_valid_cluster_policy(schema: dict[str, Any], policy: dict[str, Any]) -> None:
    assert (policy["apiVersion"], policy["kind"]) == ("kyverno.io/v1", "ClusterPolicy")
    jsonschema.validate(policy, schema)


def test_the_schema_catches_a_misspelt_field(
    schema: dict[str, Any], policy: dict[str, Any]
) -> None:
    broken = copy.deepcopy(policy)
    broken["spec"]["rules"][0]["verifyImages"][0]["verifyDigests"] = True
    with pytest.raises(jsonschema.ValidationError, match="verifyDigests"):
        jsonschema.validate(broken, schema)


def verify(policy: dict[str, Any]) -> dict[str, Any]:
    rules = policy["spec"]["rules"]
    assert len(rules) == 1 and len(rules[0]["verifyImages"]) == 1
    entry: dict[str, Any] = rules[0]["verifyImages"][0]
    return entry


def test_only_digests_signed_by_the_release_workflow_are_admitted(policy: dict[str, Any]) -> None:
    entry = verify(policy)
    assert entry["failureAction"] == "Enforce" and entry["required"] is True
    assert entry["verifyDigest"] is True
    keyless = entry["attestors"][0]["entries"][0]["keyless"]
    assert keyless["issuer"] == "https://token.actions.githubusercontent.com"
    # The certificate identity cosign gets in release.yml for tag v1.2.0:
    identity = (
        f"https://github.com/{EXAMPLE_REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.2.0"
    )
    assert fnmatch.fnmatchcase(identity, keyless["subject"])
    assert not fnmatch.fnmatchcase(
        identity.replace("@refs/tags/v", "@refs/heads/"), keyless["subject"]
    )
    # The workflow really is that file, and signs with cosign by digest.
    assert WORKFLOW.is_file() and "cosign sign --yes" in WORKFLOW.read_text()


def test_the_images_it_guards_are_the_ones_the_workflow_pushes(policy: dict[str, Any]) -> None:
    (pattern,) = verify(policy)["imageReferences"]
    pushed = f"ghcr.io/{EXAMPLE_REPOSITORY.split('/')[0]}/service@sha256:{'ab' * 32}"
    assert fnmatch.fnmatchcase(pushed, pattern)
    assert "repository=ghcr.io/${OWNER,,}/service" in WORKFLOW.read_text().replace('"', "")
