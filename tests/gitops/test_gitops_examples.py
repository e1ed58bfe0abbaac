"""The GitOps examples in gitops/ (Argo CD ApplicationSet, Flux HelmRepository +
HelmRelease) name a chart, values files and values paths that exist, and what they
would install renders with Helm 4 and Helm 3, on CloudNativePG (the database's
examples: test_cloudnative_pg.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    TEST_DIGEST,
    helm_binary,
    parse,
    run_helm,
)
from tools.prereq import require_tool

GITOPS = ROOT / "gitops"
ARGOCD = GITOPS / "argocd" / "applicationset.yaml"
FLUX = GITOPS / "flux"
SHARED_ENVS = ("staging", "prod")
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def value_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from value_paths(value, f"{path}.")
        else:
            yield path


def exists_in_chart(path: str) -> bool:
    node: Any = DEFAULTS
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


# -- Argo CD -------------------------------------------------------------------------------


def application_set() -> dict[str, Any]:
    (doc,) = load_all(ARGOCD)
    assert (doc["apiVersion"], doc["kind"]) == ("argoproj.io/v1alpha1", "ApplicationSet")
    return doc


def argocd_sources() -> tuple[dict[str, Any], dict[str, Any]]:
    sources = application_set()["spec"]["template"]["spec"]["sources"]
    (chart,) = [s for s in sources if "chart" in s]
    (values,) = [s for s in sources if "ref" in s]
    return chart, values


def argocd_elements() -> list[dict[str, str]]:
    (generator,) = application_set()["spec"]["generators"]
    elements: list[dict[str, str]] = generator["list"]["elements"]
    return elements


def test_argocd_generates_one_application_per_shared_environment() -> None:
    assert [e["env"] for e in argocd_elements()] == list(SHARED_ENVS)
    for element in argocd_elements():
        assert SEMVER.match(element["chartVersion"]), element
        assert element["cluster"].startswith("https://")
    template = application_set()["spec"]["template"]
    assert template["metadata"]["name"] == "app-{{.env}}"
    assert template["spec"]["destination"]["namespace"] == NAMESPACE


def test_argocd_installs_this_chart_by_version_from_an_oci_registry() -> None:
    chart, values = argocd_sources()
    assert chart["chart"] == CHART_META["name"]
    assert "://" not in chart["repoURL"], "Argo CD's Helm-over-OCI form has no scheme"
    assert chart["targetRevision"] == "{{.chartVersion}}"
    assert chart["helm"]["releaseName"] == RELEASE
    assert values["ref"] == "values" and "path" not in values


def test_argocd_values_files_and_paths_exist() -> None:
    chart, _ = argocd_sources()
    for element in argocd_elements():
        for entry in chart["helm"]["valueFiles"]:
            path = entry.replace("{{.env}}", element["env"])
            assert path.startswith("$values/"), path
            assert (ROOT / path.removeprefix("$values/")).is_file(), path
    missing = [p for p in value_paths(chart["helm"]["valuesObject"]) if not exists_in_chart(p)]
    assert not missing, f"not in charts/app/values.yaml: {missing}"


def test_argocd_retries_a_failed_sync_with_backoff() -> None:
    policy = application_set()["spec"]["template"]["spec"]["syncPolicy"]
    assert policy["retry"]["limit"] >= 1
    assert policy["retry"]["backoff"]["factor"] >= 2


# -- Flux ----------------------------------------------------------------------------------


def flux_repository() -> dict[str, Any]:
    (repo,) = load_all(FLUX / "base" / "helmrepository.yaml")
    return repo


def flux_release(env: str) -> dict[str, Any]:
    (release,) = load_all(FLUX / env / "helmrelease.yaml")
    assert (release["apiVersion"], release["kind"]) == ("helm.toolkit.fluxcd.io/v2", "HelmRelease")
    return release


def test_flux_helm_repository_is_the_same_oci_registry_as_argocd() -> None:
    repo = flux_repository()
    assert (repo["apiVersion"], repo["kind"]) == ("source.toolkit.fluxcd.io/v1", "HelmRepository")
    assert repo["spec"]["type"] == "oci"
    chart, _ = argocd_sources()
    assert repo["spec"]["url"] == f"oci://{chart['repoURL']}"


@pytest.mark.parametrize("env", SHARED_ENVS)
def test_flux_installs_this_chart_by_version_with_rollback_remediation(env: str) -> None:
    spec = flux_release(env)["spec"]
    repo = flux_repository()
    chart = spec["chart"]["spec"]
    assert chart["chart"] == CHART_META["name"]
    assert SEMVER.match(chart["version"]), chart["version"]
    assert chart["sourceRef"] == {"kind": "HelmRepository", "name": repo["metadata"]["name"]}
    assert flux_release(env)["metadata"]["namespace"] == repo["metadata"]["namespace"]
    assert spec["releaseName"] == RELEASE
    assert spec["upgrade"]["remediation"]["strategy"] == "rollback"
    assert spec["upgrade"]["remediation"]["retries"] >= 1
    missing = [p for p in value_paths(spec["values"]) if not exists_in_chart(p)]
    assert not missing, f"not in charts/app/values.yaml: {missing}"


@pytest.mark.parametrize("env", SHARED_ENVS)
def test_flux_values_come_from_this_repositorys_values_file(env: str) -> None:
    """The kustomization generates the ConfigMap valuesFrom names, from values/<env>.yaml."""
    kubectl = require_tool("kubectl", provided_by="bash scripts/ci/install-k8s-tools.sh")
    result = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(FLUX / env)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in parse(result.stdout).objects}
    assert set(objects) == {("ConfigMap", "app-values"), ("ConfigMap", "app-values-cloudnative-pg"),
                            ("HelmRepository", "app-charts"), ("HelmRelease", "app")}  # fmt: skip
    sources = flux_release(env)["spec"]["valuesFrom"]
    files = [f"{env}.yaml", "cloudnative-pg.yaml"]  # in order: later ones override
    assert len(sources) == len(files)
    for source, name in zip(sources, files, strict=True):
        config_map = objects[(source["kind"], source["name"])]
        assert config_map["metadata"]["namespace"] == NAMESPACE
        assert config_map["data"][source["valuesKey"]] == (ROOT / "values" / name).read_text()


# -- what they install renders -------------------------------------------------------------


def overrides_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.helm
@pytest.mark.parametrize("major", [4, 3])
@pytest.mark.parametrize("env", SHARED_ENVS)
def test_what_argocd_and_flux_install_renders(tmp_path: Path, major: int, env: str) -> None:
    helm = helm_binary(major)
    chart, _ = argocd_sources()
    argocd_files = [f.replace("{{.env}}", env).removeprefix("$values/")
                    for f in chart["helm"]["valueFiles"]]  # fmt: skip
    # The kustomization makes each valuesFrom ConfigMap from one values file (tested above).
    flux_files = [f"values/{env}.yaml", "values/cloudnative-pg.yaml"]
    installs = {
        "argocd": (argocd_files, chart["helm"]["valuesObject"]),
        "flux": (flux_files, flux_release(env)["spec"]["values"]),
    }
    for tool, (files, values) in installs.items():
        assert files == flux_files, f"{tool}: {files}"
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        for path in files:
            args += ["-f", str(ROOT / path)]
        args += ["-f", str(overrides_file(tmp_path, values))]
        # `make promote` writes the released digest into values/<env>.yaml.
        args += ["--set", f"image.digest={TEST_DIGEST}"]
        result = run_helm(helm, *args)
        assert result.returncode == 0, f"{tool} {env}: {result.stderr}"
        rendered = parse(result.stdout)
        job = rendered.migration_job()
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"registry.example.com/service@{TEST_DIGEST}"
        # On CloudNativePG: the Job straight to the primary, the pods through the Pooler.
        volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert volumes["database-url"]["secret"]["secretName"] == "app-db-app"
        env_vars = rendered.deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "DATABASE_HOST", "value": "app-db-pooler-rw"} in env_vars
        if tool == "argocd":
            assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
