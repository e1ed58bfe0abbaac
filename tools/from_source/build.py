"""Everything a kind cluster built from source needs, built (or reused) in dependency order.

`node_image()` gives the kind node image: Kubernetes, etcd, CoreDNS, pause, crictl, the
pod network (CNI ptp + kube-router for NetworkPolicy), local-path storage, and the images
the cluster runs besides the app (Traefik, the dev PostgreSQL) preloaded in its containerd.
`install_tools()` puts kind and skaffold built from source into bin/, where `make tools`
(CI=true) then finds exactly the pinned versions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.from_source import gobuild, images, nodeimage
from tools.from_source.images import Image, ImageRecipe
from tools.from_source.pins import ROOT, Pins, load
from tools.prereq import find_tool

Log = Callable[[str], None]
MANIFESTS_DIR = ROOT / "local" / "from-source" / "manifests"
DEV_VALUES = ROOT / "local" / "from-source" / "dev-values.yaml"
BIN_DIR = ROOT / "bin"
BASE_IMAGE_SCRIPT = ROOT / "scripts" / "ci" / "base-image.sh"


class FromSourceError(Exception):
    """A prerequisite is missing; the message names the command that provides it."""


@dataclass(frozen=True)
class ClusterImages:
    """What `kind create cluster --image` and the charts running on it need to know."""

    node: str  # the kind node image (a local Docker image)
    traefik: str  # names inside the node (preloaded): what manifests and values refer to
    postgres: str


def in_node_name(repository: str, version: str) -> str:
    """The fully qualified name containerd and the kubelet use for a preloaded image."""
    return f"docker.io/local/{repository}:{version}"


def traefik_ref(pins: Pins) -> str:
    return in_node_name("traefik", pins["traefik"].version)


def dev_values() -> dict[str, Any]:
    """local/from-source/dev-values.yaml: what dev.yaml changes on a cluster built here."""
    values = yaml.safe_load(DEV_VALUES.read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise FromSourceError(f"{DEV_VALUES} must be a YAML mapping")
    return values


def postgres_ref() -> str:
    """The dev database image's name in the node: the one the dev values name."""
    image = dev_values()["devDatabase"]["image"]
    return f"{image['repository']}:{image['tag']}"


def base_image(log: Log = print) -> str:
    """The local Debian base every image starts from (BASE_IMAGE, or base-image.sh builds it)."""
    configured = os.environ.get("BASE_IMAGE", "").strip()
    if configured:
        return configured
    log(f"base image: bash {BASE_IMAGE_SCRIPT.relative_to(ROOT)}")
    result = subprocess.run(
        ["bash", str(BASE_IMAGE_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise FromSourceError(f"scripts/ci/base-image.sh failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def kind_module_dir(pins: Pins) -> Path:
    """kind's module source (its images/base/files and node-image constants), from Go's cache."""
    try:
        directory = gobuild.module_source(pins["kind"])
    except gobuild.GoBuildError as exc:
        raise FromSourceError(f"kind's module source not found: {exc}") from exc
    if not (directory / "images" / "base" / "files").is_dir():
        raise FromSourceError(f"kind's module source has no images/base/files: {directory}")
    return directory


def sandbox_image(kind_dir: Path) -> str:
    """The pause image kind's containerd config names (what kind's builder preloads too)."""
    config = (kind_dir / "images/base/files/etc/containerd/config.toml").read_text()
    match = re.search(r'sandbox_image\s*=\s*"([^"]+)"', config)
    if match is None:
        raise FromSourceError("no sandbox_image in kind's containerd config.toml")
    return match[1]


def storage_manifest(kind_dir: Path, provisioner: str) -> str:
    """kind's default local-path storage manifest, with the image built here for both of
    its images (the provisioner, and the helper pod that makes directories)."""
    source = (kind_dir / "pkg/build/nodeimage/const_storage.go").read_text()
    match = re.search(r"const defaultStorageManifest = `(.*?)\n`", source, re.DOTALL)
    if match is None:
        raise FromSourceError("defaultStorageManifest not found in kind's const_storage.go")
    manifest = re.sub(r"` \+ storage(Provisioner|Helper)Image \+ `", provisioner, match[1])
    if "` +" in manifest or provisioner not in manifest:
        raise FromSourceError("kind's storage manifest changed shape; update tools/from_source")
    return manifest


def cni_manifest(kube_router: str) -> str:
    return (
        (MANIFESTS_DIR / "default-cni.yaml").read_text().replace("@KUBE_ROUTER_IMAGE@", kube_router)
    )


def traefik_manifest(pins: Pins | None = None) -> str:
    pins = pins or load()
    return (
        (MANIFESTS_DIR / "traefik.yaml").read_text().replace("@TRAEFIK_IMAGE@", traefik_ref(pins))
    )


def kubectl_for_node() -> Path:
    """The node's kubectl (kind applies the CNI and storage manifests with it): bin/kubectl."""
    found = find_tool("kubectl", "KUBECTL")
    if found is None:
        raise FromSourceError(
            "`kubectl` not found: run `bash scripts/ci/install-k8s-tools.sh` (or `make tools`)"
        )
    return Path(found)


def node_image(pins: Pins | None = None, *, log: Log = print) -> ClusterImages:
    pins = pins or load()
    base = base_image(log)
    kind_dir = kind_module_dir(pins)
    kube = gobuild.build(pins["kubernetes"], log=log)
    built = {
        name: gobuild.build(pins[name], log=log)
        for name in (
            "etcd",
            "coredns",
            "crictl",
            "kube-router",
            "local-path-provisioner",
            "traefik",
        )
    }
    k8s_version = pins["kubernetes"].version

    def recipe(
        name: str,
        version: str,
        binary: Path | None = None,
        files: dict[str, Path] | None = None,
        **kwargs: object,
    ) -> Image:
        context = {**(files or {}), **({f"bin/{binary.name}": binary} if binary else {})}
        return images.ensure(
            ImageRecipe(name=name, version=version, files=context, **kwargs),  # type: ignore[arg-type]
            base_image=base,
            log=log,
        )

    debian = pins.debian
    kind_base = recipe(
        "kind-base",
        pins["kind"].version,
        built["crictl"].binary("crictl"),
        trees={"files": kind_dir / "images/base/files"},
        build_args={
            "CONTAINERD_VERSION": debian["containerd"],
            "RUNC_VERSION": debian["runc"],
            "CNI_PLUGINS_VERSION": debian["containernetworking-plugins"],
        },
    )
    preloaded: dict[str, Image] = {}
    for command in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        preloaded[f"registry.k8s.io/{command}:{k8s_version}"] = recipe(
            command,
            k8s_version,
            kube.binary(command),
            dockerfile_dir="kube-component",
            build_args={"BINARY": command},
        )
    preloaded[f"registry.k8s.io/kube-proxy:{k8s_version}"] = recipe(
        "kube-proxy", k8s_version, kube.binary("kube-proxy")
    )
    etcd = pins["etcd"]
    preloaded[f"registry.k8s.io/etcd:{etcd.extra['image_tag']}"] = recipe(
        "etcd", etcd.version, built["etcd"].binary("etcd")
    )
    coredns = pins["coredns"]
    preloaded[f"registry.k8s.io/coredns/coredns:{coredns.version}"] = recipe(
        "coredns", coredns.version, built["coredns"].binary("coredns")
    )
    pause_name = sandbox_image(kind_dir)
    preloaded[pause_name] = recipe(
        "pause",
        pause_name.rsplit(":", 1)[1],
        files={"pause.c": kube_module_dir(pins) / "build/pause/linux/pause.c"},
        build_args={"PAUSE_VERSION": pause_name.rsplit(":", 1)[1]},
    )
    router = pins["kube-router"]
    kube_router = in_node_name("kube-router", router.version)
    preloaded[kube_router] = recipe(
        "kube-router", router.version, built["kube-router"].binary("kube-router")
    )
    lpp = pins["local-path-provisioner"]
    provisioner = in_node_name("local-path-provisioner", lpp.version)
    preloaded[provisioner] = recipe(
        "local-path-provisioner",
        lpp.version,
        built["local-path-provisioner"].binary("local-path-provisioner"),
    )
    preloaded[traefik_ref(pins)] = recipe(
        "traefik", pins["traefik"].version, built["traefik"].binary("traefik")
    )
    preloaded[postgres_ref()] = recipe(
        "postgres",
        postgres_ref().rsplit(":", 1)[1],
        build_args={"POSTGRESQL_VERSION": debian["postgresql-15"]},
    )

    parts = nodeimage.NodeParts(
        base=kind_base,
        kubernetes_version=k8s_version,
        binaries={
            "kubeadm": kube.binary("kubeadm"),
            "kubelet": kube.binary("kubelet"),
            "kubectl": kubectl_for_node(),
        },
        images=preloaded,
        files={
            "/kind/manifests/default-cni.yaml": cni_manifest(kube_router),
            "/kind/manifests/default-storage.yaml": storage_manifest(kind_dir, provisioner),
        },
    )
    node = nodeimage.ensure(images.docker_cli(), parts, log=log)
    return ClusterImages(node=node.tag, traefik=traefik_ref(pins), postgres=postgres_ref())


def kube_module_dir(pins: Pins) -> Path:
    try:
        return gobuild.module_source(pins["kubernetes"])
    except gobuild.GoBuildError as exc:
        raise FromSourceError(f"k8s.io/kubernetes source not found: {exc}") from exc


def install_tools(pins: Pins | None = None, *, bin_dir: Path = BIN_DIR, log: Log = print) -> None:
    """kind and skaffold built from source, into bin/ (atomically: never half a binary)."""
    pins = pins or load()
    for name in ("kind", "skaffold"):
        binary = gobuild.build(pins[name], log=log).binary(name)
        target = bin_dir / name
        if target.is_file() and gobuild.cache.file_digest(target) == gobuild.cache.file_digest(
            binary
        ):
            log(f"{name}: {target} is the build of {pins[name].version}")
            continue
        bin_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=bin_dir, prefix=f".{name}.", delete=False) as tmp:
            shutil.copyfile(binary, tmp.name)
        Path(tmp.name).chmod(0o755)
        Path(tmp.name).replace(target)
        log(f"{name}: installed {target} ({pins[name].version}, built from source)")
