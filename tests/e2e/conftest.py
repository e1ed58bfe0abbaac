"""Session fixtures of the live e2e suite: prerequisites, the kind cluster, images.

Nothing here runs unless a live test asks for it, so the harness unit tests next door
never touch Docker or a cluster. Without Docker, kind or the internet the live tests skip
naming what is missing; with E2E_REQUIRED=1 (hosted CI) they fail instead.

With CLUSTER_FROM_SOURCE=1 (our CI machines) the cluster runs on the node image built from
source (tools/from_source; `make from-source` builds it, the fixture reuses it) with Traefik
as its ingress controller, and nothing needs the internet.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence

import pytest

from service.store.schema_revision import code_head
from tests.e2e.harness import cluster_diagnostics, images, prerequisites
from tests.e2e.harness.cluster import E2ECluster, provide_cluster
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import (
    ARTIFACTS_DIR,
    CLUSTER_ARTIFACTS,
    IMAGE_REPOSITORY,
    ROOT,
    STATE_DIR,
    BuiltImage,
    E2ETools,
    ImageFactory,
    log,
    unavailable,
)
from tests.e2e.harness.migration_images import (
    ExtraRevision,
    prepare_build_context,
)
from tests.e2e.harness.prerequisites import ClusterChoice, SettingError
from tools import localcluster
from tools.kind_sandbox import KindSandboxError, kind_environment
from tools.prereq import find_tool


@pytest.fixture(scope="session")
def e2e_choice(pytestconfig: pytest.Config) -> ClusterChoice:
    try:
        # --kubeconfig is pytest-kind's own option; honoured like E2E_KUBECONFIG.
        option = pytestconfig.getoption("kubeconfig", default=None)
        return prerequisites.choose_cluster(os.environ, option)
    except SettingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def e2e_tools(e2e_choice: ClusterChoice) -> E2ETools:
    found = prerequisites.find_tools(("docker", "kind", "kubectl", "helm"))
    problems = prerequisites.missing_tool_problems(found)
    make = find_tool("make", "MAKE")
    if make is None:
        problems.append("`make` not found (install it with: apt-get install make)")
    if found["docker"] and (problem := prerequisites.docker_problem(found["docker"])):
        problems.append(problem)
    if not from_source() and (problem := prerequisites.internet_problem()):
        problems.append(problem)
    kubeconfig = e2e_choice.existing_kubeconfig
    if (
        kubeconfig is not None
        and found["kubectl"]
        and (problem := prerequisites.cluster_problem(found["kubectl"], kubeconfig))
    ):
        problems.append(problem)
    if problems:
        unavailable(e2e_choice, problems)
    assert make is not None and all(found.values())
    return E2ETools(make=make, **{k: v for k, v in found.items() if v is not None})


@pytest.fixture(scope="session")
def e2e_skaffold(e2e_choice: ClusterChoice) -> str:
    found = prerequisites.find_tools(("skaffold",))
    if found["skaffold"] is None:
        unavailable(e2e_choice, prerequisites.missing_tool_problems(found))
    assert found["skaffold"] is not None
    return found["skaffold"]


@pytest.fixture(scope="session")
def e2e_cluster(
    e2e_choice: ClusterChoice, e2e_tools: E2ETools, request: pytest.FixtureRequest
) -> Iterator[E2ECluster]:
    log(
        f"using existing kind cluster {e2e_choice.name} ({e2e_choice.existing_kubeconfig})"
        if e2e_choice.existing_kubeconfig
        else f"kind cluster {e2e_choice.name} from local/kind-cluster.yaml"
    )

    def diagnose_if_failed(raised: bool) -> None:
        """The cluster is about to go: keep what a failed run needs to be understood."""
        if raised or request.session.testsfailed:
            dest = ARTIFACTS_DIR / CLUSTER_ARTIFACTS
            cluster_diagnostics.collect(
                kind=e2e_tools.kind, kubectl=e2e_tools.kubectl, cluster=e2e_choice.name, dest=dest
            )
            log(f"tests failed: kind logs, events and ingress-nginx logs saved in {dest}")

    image, create_env = None, None
    if e2e_choice.create:
        image = source_node_image() if from_source() else None
        try:
            create_env = kind_environment(e2e_tools.docker)
        except KindSandboxError as exc:
            unavailable(e2e_choice, [str(exc)])
    with (
        provide_cluster(
            e2e_choice,
            kind=e2e_tools.kind,
            kubectl=e2e_tools.kubectl,
            state_dir=STATE_DIR / e2e_choice.name,
            before_delete=diagnose_if_failed,
            image=image,
            create_env=create_env,
        ) as cluster,
        pytest.MonkeyPatch.context() as env,
    ):
        # tools.localcluster, helm and skaffold all find the cluster through KUBECONFIG.
        env.setenv("KUBECONFIG", str(cluster.kubeconfig))
        localcluster.install_ingress(cluster.context, log=log)
        yield cluster
        if request.session.testsfailed and cluster.created_here and e2e_choice.keep:
            log(
                f"tests failed; cluster {cluster.name} kept: collect its logs with `python -m "
                f"tests.e2e.harness.cluster_diagnostics --name {cluster.name} --out "
                f"{ARTIFACTS_DIR / CLUSTER_ARTIFACTS}` (hosted CI does)"
            )


def from_source() -> bool:
    try:
        return localcluster.from_source()
    except localcluster.LocalClusterError as exc:
        pytest.fail(str(exc), pytrace=False)


def source_node_image() -> str:
    """The node image built from source: reused when `make from-source` built it already."""
    from tools.from_source import build

    try:
        return build.node_image(log=log).node
    except Exception as exc:  # any build failure fails the fixture, named
        pytest.fail(f"CLUSTER_FROM_SOURCE=1 but the node image does not build: {exc}",
                    pytrace=False)  # fmt: skip


@pytest.fixture(scope="session")
def e2e_kubectl(e2e_cluster: E2ECluster, e2e_tools: E2ETools) -> Kubectl:
    return Kubectl(binary=e2e_tools.kubectl, kubeconfig=e2e_cluster.kubeconfig)


@pytest.fixture(scope="session")
def e2e_run_id() -> str:
    """Unique per run: image tags and namespaces never collide with a kept cluster's."""
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def e2e_images(
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> ImageFactory:
    """build(name, extra_revisions): the repo's image plus those migrations, loaded into kind."""
    built: dict[str, BuiltImage] = {}

    def build(name: str, revisions: Sequence[ExtraRevision]) -> BuiltImage:
        if name in built:
            return built[name]
        if revisions:
            context = tmp_path_factory.mktemp(f"image-{name}") / "src"
            head = prepare_build_context(ROOT, context, revisions)
        else:
            # What this code needs: the chain's head but for contract steps at its end.
            context, head = ROOT, code_head()
        tag = f"e2e-{e2e_run_id}-{name}"
        log(f"building {IMAGE_REPOSITORY}:{tag} (code needs revision {head})")
        ref = images.build_image(
            make=e2e_tools.make,
            context=context,
            docker=e2e_tools.docker,
            repository=IMAGE_REPOSITORY,
            tag=tag,
        )
        images.kind_load(kind=e2e_tools.kind, cluster=e2e_cluster.name, image=ref)
        built[name] = BuiltImage(IMAGE_REPOSITORY, tag, head)
        return built[name]

    return build


@pytest.fixture(scope="session")
def base_image(e2e_images: ImageFactory) -> BuiltImage:
    return e2e_images("base", ())
