"""The Makefile's argument checks: bad input is refused with the fix, and nothing is deployed.

`make` runs for real; kind, helm and skaffold are stand-ins that record every call, so a
refusal can be proven to have happened before anything touched a cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.prereq import require_tool

ROOT = Path(__file__).resolve().parents[2]

RECORDER = """#!/bin/sh
echo "{name} $*" >> "$FAKE_CALLS"
"""

# A helm that says which major it is (tools/deploy.py picks the rollback flag by it).
FAKE_HELM = """#!/bin/sh
echo "helm $*" >> "$FAKE_CALLS"
case "$*" in
  "version --short") echo "${FAKE_HELM_VERSION:-v4.1.4+g0123456}" ;;
esac
"""

# A kubectl that answers like a reachable kind cluster, for the paths that get past the
# context check.
FAKE_KUBECTL = """#!/bin/sh
echo "kubectl $*" >> "$FAKE_CALLS"
case "$*" in
  *"config current-context"*) echo "$FAKE_CONTEXT" ;;
  *"create secret tls"*) printf 'apiVersion: v1\\nkind: Secret\\nmetadata: {name: t}\\n' ;;
  *apply*) cat >/dev/null; echo "configured" ;;
esac
"""


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    if shutil.which("make") is None:
        pytest.fail("make not found (install it with: apt-get install make)")
    directory = tmp_path / "fakes"
    directory.mkdir()
    env = {
        "FAKE_CALLS": str(tmp_path / "calls.log"),
        # this run's local CA, not the developer's .local/tls
        "LOCAL_TLS_DIR": str(tmp_path / "tls"),
    }
    for name in ("kind", "helm", "skaffold"):
        path = directory / name
        path.write_text(FAKE_HELM if name == "helm" else RECORDER.format(name=name))
        path.chmod(0o755)
        env[name.upper()] = str(path)
    kubectl = directory / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    env["FAKE_KUBECTL"] = str(kubectl)
    return env


def kubeconfig(tmp_path: Path, context: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
  - name: {context}
    cluster:
      server: https://203.0.113.10:6443
users:
  - name: {context}
    user:
      token: not-a-real-token
contexts:
  - name: {context}
    context:
      cluster: {context}
      user: {context}
current-context: {context}
"""
    )
    return path


def make(target: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        # CI exports CLUSTER_FROM_SOURCE=1: each test says which flavour it runs.
        if k not in {"ENV", "KUBECONFIG", "CLUSTER_FROM_SOURCE"}
        and not k.startswith("DEPLOY_CONTEXT_")
    }
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, *args],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=120,
        check=False,
    )


def on_kind(fakes: dict[str, str], from_source: str) -> dict[str, str]:
    """The stand-ins, with the current context a kind cluster of the flavour `from_source`
    (CLUSTER_FROM_SOURCE's value)."""
    return {**fakes, "KUBECTL": fakes["FAKE_KUBECTL"], "FAKE_CONTEXT": "kind-app-local",
            "CLUSTER_FROM_SOURCE": from_source}  # fmt: skip


def calls(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_CALLS"])
    return path.read_text().splitlines() if path.exists() else []


def test_deploy_refuses_an_unknown_env(fakes: dict[str, str]) -> None:
    result = make("deploy", "ENV=bogus", env=fakes)
    assert result.returncode != 0
    assert (
        "ENV='bogus' is not an environment: use ENV=dev, ENV=staging or ENV=prod" in result.stderr
    )
    assert calls(fakes) == []  # not even kubectl: refused before looking at any cluster


def test_deploy_refuses_a_missing_env(fakes: dict[str, str]) -> None:
    result = make("deploy", env=fakes)
    assert result.returncode != 0
    assert "ENV is required: `make deploy ENV=dev`" in result.stderr
    assert calls(fakes) == []


def test_deploy_refuses_a_latest_image(fakes: dict[str, str]) -> None:
    result = make("deploy", "ENV=dev", "DEPLOY_IMAGE=service:latest", env=fakes)
    assert result.returncode != 0
    assert "not `latest`" in result.stderr
    assert calls(fakes) == []


@pytest.mark.parametrize(
    ("env_name", "image", "expected"),
    [
        ("dev", "", "DEPLOY_IMAGE is required for ENV=dev"),
        ("prod", "", "DEPLOY_IMAGE is required for ENV=prod"),
        ("staging", "reg.example/service:abc123", "ENV=staging deploys by digest only"),
        ("prod", "reg.example/service@sha256:abc", "ENV=prod deploys by digest only"),
    ],
)
def test_deploy_refuses_an_image_the_environment_cannot_run(
    fakes: dict[str, str], env_name: str, image: str, expected: str
) -> None:
    result = make("deploy", f"ENV={env_name}", f"DEPLOY_IMAGE={image}", env=fakes)
    assert result.returncode != 0
    assert expected in result.stderr
    assert calls(fakes) == []


def real_kubectl() -> str:
    return require_tool(
        "kubectl",
        provided_by="bash scripts/ci/install-k8s-tools.sh or make tools",
        env_var="KUBECTL",
    )


def test_dev_refuses_a_context_that_is_not_kind(fakes: dict[str, str], tmp_path: Path) -> None:
    env = {
        **fakes,
        "KUBECTL": real_kubectl(),
        "KUBECONFIG": str(kubeconfig(tmp_path, "prod-eu-west")),
    }
    result = make("dev", env=env)
    assert result.returncode != 0
    assert "the current kube context is 'prod-eu-west'" in result.stderr
    assert "`make cluster`" in result.stderr
    assert calls(env) == []  # no skaffold, no helm, no kind


def test_deploy_dev_refuses_a_context_that_is_not_kind(
    fakes: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **fakes,
        "KUBECTL": real_kubectl(),
        "KUBECONFIG": str(kubeconfig(tmp_path, "gke_team_europe-west1_main")),
    }
    result = make("deploy", "ENV=dev", "DEPLOY_IMAGE=service:abc123", env=env)
    assert result.returncode != 0
    assert "'gke_team_europe-west1_main'" in result.stderr
    assert calls(env) == []


def test_dev_refuses_when_there_is_no_context_at_all(fakes: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    env = {**fakes, "KUBECTL": real_kubectl(), "KUBECONFIG": str(empty)}
    result = make("dev", env=env)
    assert result.returncode != 0
    assert "no current kube context" in result.stderr
    assert "`make cluster`" in result.stderr
    assert calls(env) == []


@pytest.mark.parametrize(("from_source", "profiles"), [("0", "dev"), ("1", "dev,from-source")])
def test_dev_on_kind_prepares_tls_then_hands_over_to_skaffold(
    fakes: dict[str, str], from_source: str, profiles: str
) -> None:
    """On a cluster built from source, skaffold's `from-source` profile adds that flavour's
    dev values (the dev database's preloaded image)."""
    env = on_kind(fakes, from_source)
    result = make("dev", env=env)
    assert result.returncode == 0, result.stderr
    recorded = calls(env)
    assert recorded[-1] == f"skaffold dev --profile {profiles} --kube-context kind-app-local"
    applied = [c for c in recorded if " apply " in c]
    assert all("--context kind-app-local" in c for c in recorded if c.startswith("kubectl --"))
    assert len(applied) == 2  # the namespace, then the TLS secret
    assert not any(c.startswith(("helm", "kind")) for c in recorded)


@pytest.mark.parametrize(
    ("from_source", "extra_values"),
    [("0", ""), ("1", f" --values {ROOT}/local/from-source/dev-values.yaml")],
)
def test_deploy_dev_loads_the_image_and_runs_helm_with_the_flavours_values(
    fakes: dict[str, str], from_source: str, extra_values: str
) -> None:
    env = on_kind(fakes, from_source)
    result = make("deploy", "ENV=dev", "DEPLOY_IMAGE=service:abc123", env=env)
    assert result.returncode == 0, result.stderr
    recorded = calls(env)
    assert "kind load docker-image service:abc123 --name app-local" in recorded
    [helm] = [c for c in recorded if c.startswith("helm upgrade")]
    assert f"--values {ROOT}/values/dev.yaml{extra_values} --namespace app " in helm, helm


@pytest.mark.parametrize("target", [("dev",), ("deploy", "ENV=dev", "DEPLOY_IMAGE=service:abc")])
def test_a_cluster_flavour_that_is_not_yes_or_no_is_refused_before_anything_changes(
    fakes: dict[str, str], target: tuple[str, ...]
) -> None:
    env = on_kind(fakes, "maybe")
    result = make(*target, env=env)
    assert result.returncode != 0
    assert "CLUSTER_FROM_SOURCE='maybe' is not a yes/no value; use 1 or 0" in result.stderr
    assert not any(" apply " in c or c.startswith(("skaffold", "kind", "helm upgrade"))
                   for c in calls(env))  # fmt: skip


def deploy_staging(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return make(
        "deploy",
        "ENV=staging",
        "NAMESPACE=shop",
        f"DEPLOY_IMAGE=reg.example/service@sha256:{'ab' * 32}",
        env=env,
    )


@pytest.mark.parametrize(
    ("helm_version", "rollback"),
    [("v4.1.4+g05fa379", "--rollback-on-failure"), ("v3.17.2+gcc0bbbd", "--atomic")],
)
def test_deploy_staging_runs_helm_with_its_values_against_the_current_context(
    fakes: dict[str, str], helm_version: str, rollback: str
) -> None:
    """Only its own values file, also on a machine whose kind cluster is built from source."""
    env = {
        **fakes,
        "CLUSTER_FROM_SOURCE": "1",
        "KUBECTL": fakes["FAKE_KUBECTL"],
        "FAKE_CONTEXT": "staging-cluster",
        "DEPLOY_CONTEXT_STAGING": "staging-cluster",
        "FAKE_HELM_VERSION": helm_version,
    }
    result = deploy_staging(env)
    assert result.returncode == 0, result.stderr
    helm = [c for c in calls(env) if c.startswith("helm ") and c != "helm version --short"]
    assert len(helm) == 1
    # Waits for the migration Job and rolls a failed upgrade back, with the flag the
    # installed Helm major spells.
    assert helm[0] == (
        f"helm upgrade --install app {ROOT}/charts/app --values {ROOT}/values/staging.yaml "
        f"--namespace shop --kube-context staging-cluster --wait --wait-for-jobs {rollback} "
        "--timeout 10m --set-string image.repository=reg.example/service "
        f"--set-string image.digest=sha256:{'ab' * 32}"
    )
    # staging is not kind: no namespace/TLS preparation and no kind load
    assert not any(" apply " in c or c.startswith("kind ") for c in calls(env))


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        (None, "ENV=staging deploys only to the kube context configured for it, and "
         "DEPLOY_CONTEXT_STAGING is unset: `export DEPLOY_CONTEXT_STAGING=<context>`"),
        ("staging-eu", "the current kube context is 'prod-eu', but "
         "DEPLOY_CONTEXT_STAGING='staging-eu'"),
    ],
)  # fmt: skip
def test_deploy_staging_refuses_a_context_not_configured_for_it(
    fakes: dict[str, str], configured: str | None, message: str
) -> None:
    env = {**fakes, "KUBECTL": fakes["FAKE_KUBECTL"], "FAKE_CONTEXT": "prod-eu"}
    if configured:
        env["DEPLOY_CONTEXT_STAGING"] = configured
    result = deploy_staging(env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not any(c.startswith(("helm", "kind")) for c in calls(env))


def test_deploy_refuses_a_helm_older_than_the_chart_supports(fakes: dict[str, str]) -> None:
    env = {
        **fakes,
        "KUBECTL": fakes["FAKE_KUBECTL"],
        "FAKE_CONTEXT": "staging-cluster",
        "DEPLOY_CONTEXT_STAGING": "staging-cluster",
        "FAKE_HELM_VERSION": "v3.12.0+gabcdef0",
    }
    result = deploy_staging(env)
    assert result.returncode != 0
    assert "the chart needs 3.17+" in result.stderr
    assert not any(c.startswith("helm upgrade") for c in calls(env))


def test_deploy_passes_the_tag_of_a_tagged_digest_for_the_version_label(
    fakes: dict[str, str],
) -> None:
    env = {
        **fakes,
        "KUBECTL": fakes["FAKE_KUBECTL"],
        "FAKE_CONTEXT": "prod-eu",
        "DEPLOY_CONTEXT_PROD": "prod-eu",
    }
    image = f"reg.example:5000/service:1.4.2@sha256:{'cd' * 32}"
    result = make("deploy", "ENV=prod", f"DEPLOY_IMAGE={image}", env=env)
    assert result.returncode == 0, result.stderr
    (upgrade,) = [c for c in calls(env) if c.startswith("helm upgrade")]
    assert upgrade.endswith(
        "--set-string image.repository=reg.example:5000/service "
        "--set-string image.tag=1.4.2 "
        f"--set-string image.digest=sha256:{'cd' * 32}"
    )
