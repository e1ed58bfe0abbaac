"""Render charts/app with a real helm binary and look things up in the rendered objects."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.prereq import require_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "app"
VALUES_DIR = ROOT / "values"
ENVIRONMENTS = ("dev", "staging", "prod")
# The CloudNativePG overlay (docs/cloudnativepg.md), layered on an environment's file.
CLOUDNATIVE_PG = VALUES_DIR / "cloudnative-pg.yaml"
RELEASE = "app"
NAMESPACE = "app"
INSTALL_TOOLS = "bash scripts/ci/install-k8s-tools.sh"

# staging and prod refuse to render without a digest (image.requireDigest); a pipeline
# passes the real one. Any well-formed digest renders the same objects.
TEST_DIGEST = "sha256:" + "5e" * 32
# dev deploys a tag (skaffold and `make deploy ENV=dev` pass the one they built): the chart
# renders no image without a digest or a tag.
TEST_TAG = "1.4.2"

# Every app-image container mounts these (read-only root filesystem elsewhere).
WRITABLE_PATHS = {"/tmp", "/run/metrics"}

Obj = dict[str, Any]


def helm_binary(major: int) -> str:
    """bin/helm is Helm 4, bin/helm3 is Helm 3.17 (both from scripts/ci/install-k8s-tools.sh)."""
    name = "helm" if major == 4 else "helm3"
    return require_tool(name, provided_by=f"{INSTALL_TOOLS} helm")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def values_file(env: str) -> Path:
    return VALUES_DIR / f"{env}.yaml"


def env_args(env: str | None) -> list[str]:
    """The -f/--set arguments a deployment of `env` passes (None: chart defaults only)."""
    if env is None:
        return []
    args = ["-f", str(values_file(env))]
    if env == "dev":
        args += ["--set", f"image.tag={TEST_TAG}"]
    else:
        args += ["--set", f"image.digest={TEST_DIGEST}"]
    return args


def template_args(
    env: str | None, sets: Sequence[str] = (), extra_values: Sequence[Path] = ()
) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *env_args(env)]
    for path in extra_values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


@dataclass(frozen=True)
class Render:
    """The objects of one `helm template`, in output order."""

    objects: tuple[Obj, ...]

    def kinds(self) -> set[str]:
        return {o["kind"] for o in self.objects}

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Obj:
        found = [o for o in self.of_kind(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def has(self, kind: str) -> bool:
        return any(o["kind"] == kind for o in self.objects)

    def deployment(self) -> Obj:
        return self.one("Deployment", RELEASE)

    def migration_job(self) -> Obj:
        return self.one("Job")

    def config_map(self) -> Obj:
        return self.one("ConfigMap", RELEASE)


def parse(text: str) -> Render:
    return Render(tuple(doc for doc in yaml.safe_load_all(text) if doc))


def render(
    helm: str, env: str | None, sets: Sequence[str] = (), extra_values: Sequence[Path] = ()
) -> Render:
    result = run_helm(helm, *template_args(env, sets, extra_values))
    assert result.returncode == 0, f"helm template failed for {env}:\n{result.stderr}"
    return parse(result.stdout)


def pod_specs(rendered: Render) -> Iterator[tuple[str, Obj, Obj]]:
    """(description, pod metadata, pod spec) of every pod the release would create."""
    for obj in rendered.objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "Pod":
            yield f"Pod/{name}", obj["metadata"], obj["spec"]
        elif kind in {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}:
            template = obj["spec"]["template"]
            yield f"{kind}/{name}", template["metadata"], template["spec"]


def containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def uses_app_image(container: Obj, deployment: Obj) -> bool:
    app_image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return bool(container["image"] == app_image)


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a matchLabels selector selects an object with `labels`."""
    return all(labels.get(key) == value for key, value in selector.items())


# The Bitnami-named extension knobs, each set once: a platform's typical additions.
PLATFORM_KNOBS = [
    "priorityClassName=business-critical",
    "extraEnvVarsSecret=app-extra-env",
    "extraVolumes[0].name=db-ca",
    "extraVolumes[0].configMap.name=db-ca",
    "extraVolumeMounts[0].name=db-ca",
    "extraVolumeMounts[0].mountPath=/etc/db-ca",
    "extraVolumeMounts[0].readOnly=true",
    "sidecars[0].name=log-shipper",
    "sidecars[0].image=registry.example/shipper:1.2",
    "initContainers[0].name=warm-cache",
    "initContainers[0].image=registry.example/warm:1.0",
]
