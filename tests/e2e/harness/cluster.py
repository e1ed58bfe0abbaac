"""The kind cluster the live suite runs on: pytest-kind's KindCluster with the repo's config.

pytest-kind's own `kind_cluster` fixture cannot take a kind config, and our cluster needs
one (ports 80/443 on 127.0.0.1 and the ingress-ready label, local/kind-cluster.yaml), so
this drives its `KindCluster` class directly. Its constructor args (name, kubeconfig,
image, kind_path, kubectl_path) are the same in pytest-kind 22.11 and pytest-kind-ng.
The kind and kubectl it runs are ours (bin/ via `make tools`), never its downloads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_kind import KindCluster  # type: ignore[import-untyped]

from tests.e2e.harness import commands
from tests.e2e.harness.prerequisites import ClusterChoice, ports_in_use, ports_problem

ROOT = Path(__file__).resolve().parents[3]
KIND_CONFIG = ROOT / "local" / "kind-cluster.yaml"
INGRESS_PORTS = (80, 443)


class ClusterSetupError(AssertionError):
    pass


@dataclass(frozen=True)
class E2ECluster:
    name: str
    kubeconfig: Path
    created_here: bool

    @property
    def context(self) -> str:
        return f"kind-{self.name}"


def kind_clusters(kind: str) -> list[str]:
    return commands.run([kind, "get", "clusters"], timeout=60).stdout.split()


@contextlib.contextmanager
def provide_cluster(
    choice: ClusterChoice,
    *,
    kind: str,
    kubectl: str,
    state_dir: Path,
    before_delete: Callable[[bool], None] | None = None,
    image: str | None = None,
    create_env: Mapping[str, str] | None = None,
) -> Iterator[E2ECluster]:
    """Yield the cluster; delete it afterwards only if this run created it and may.

    `before_delete(raised)` runs just before that delete, with whether the block raised:
    the last moment to read the cluster (the suite collects diagnostics of a failed run).
    `image`: the node image instead of the config's (a cluster built from source);
    `create_env`: the environment `kind create cluster` runs in (tools/kind_sandbox.py).
    """
    if choice.existing_kubeconfig is not None:
        yield E2ECluster(choice.name, choice.existing_kubeconfig, created_here=False)
        return

    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = state_dir / "kubeconfig"
    existed = choice.name in kind_clusters(kind)
    if existed:
        # KindCluster.create() reuses a cluster by name but only writes a kubeconfig when
        # it creates one: give it this cluster's, or it would read an empty file.
        commands.run(
            [kind, "export", "kubeconfig", "--name", choice.name, f"--kubeconfig={kubeconfig}"],
            timeout=60,
        )
    elif problem := ports_problem(ports_in_use(INGRESS_PORTS), choice.name):
        raise ClusterSetupError(problem)

    cluster = KindCluster(
        choice.name,
        kubeconfig=kubeconfig,
        image=image,
        kind_path=Path(kind),
        kubectl_path=Path(kubectl),
    )
    with _environment(create_env):  # pytest-kind runs kind with os.environ
        cluster.create(config_file=KIND_CONFIG)
    raised = True
    try:
        yield E2ECluster(choice.name, kubeconfig, created_here=not existed)
        raised = False
    finally:
        if not existed and not choice.keep:
            try:
                if before_delete is not None:
                    before_delete(raised)
            finally:
                cluster.delete()


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def restricted_namespace_manifest(name: str) -> dict[str, object]:
    """A namespace where Pod Security "restricted" is enforced, and warned about in output."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
        "app.kubernetes.io/created-by": "e2e-suite",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
