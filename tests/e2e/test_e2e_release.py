"""Tests 1-4 on a live kind cluster: install, API over port-forward and HTTPS ingress,
zero-downtime upgrade with a new migration, and a failing migration.

One release lives through the module as it would in real life: installed from
values/dev.yaml, upgraded to an image whose code adds a migration, then upgraded to one
whose migration fails. Tests 3 and 4 each bring the state they need (the failing image
carries the expand migration too), so either can run alone with -k.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.harness import release as rel
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.helm import Helm
from tests.e2e.harness.ingress_client import ingress_session, wait_until_served
from tests.e2e.harness.jobs import describe_end, wait_for_job_end
from tests.e2e.harness.k8s_state import (
    JobState,
    deployment_rolled_out,
    job_state,
    live_pods,
    pod_ready,
)
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import (
    BuiltImage,
    E2ETools,
    ImageFactory,
    app_image,
    ingress_host,
    restricted_namespace,
)
from tests.e2e.harness.migration_images import (
    EXPAND_REVISION,
    FAILING_REVISION,
    FAILURE_MARKER,
)
from tests.e2e.harness.port_forward import PortForward
from tests.e2e.harness.request_loop import LoopReport, RequestLoop
from tests.e2e.harness.waiting import wait_until
from tools import localcluster

pytestmark = pytest.mark.e2e

REQUEST_TIMEOUT_S = 5
# Enough requests on each side of an event to call it "flowing", and the tail that must
# all come from the new code before the upgrade counts as served.
FLOWING = 20
SETTLED_TAIL = 20


@dataclass(frozen=True)
class ReleaseEnv:
    namespace: str
    kubectl: Kubectl
    helm: Helm
    host: str
    ca_cert: Path
    values_files: tuple[Path, ...]

    def https(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def session(self) -> requests.Session:
        return ingress_session(self.host, ca_bundle=self.ca_cert)

    def upgrade(
        self,
        image: BuiltImage,
        *,
        replicas: int | None = None,
        check: bool = True,
        extra_values: dict[str, str | int] | None = None,
        wait_timeout_s: int = 600,
    ) -> subprocess.CompletedProcess[str]:
        set_values: dict[str, str | int] = dict(extra_values or {})
        if replicas is not None:
            set_values["replicaCount"] = replicas
        return self.helm.upgrade_install(
            rel.RELEASE,
            rel.CHART,
            values_files=self.values_files,
            set_string=rel.image_values(image.repository, image.tag),
            set_values=set_values or None,
            wait_timeout_s=wait_timeout_s,
            check=check,
        )

    def server_pods(self) -> list[dict[str, Any]]:
        """The server pods that are not terminating: those the Service can send traffic to."""
        pods: list[dict[str, Any]] = self.kubectl.get_json("pods", "-l", rel.SERVER_SELECTOR)[
            "items"
        ]
        return live_pods(pods)

    def migration_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.kubectl.get_json("jobs", "-l", rel.MIGRATION_SELECTOR)[
            "items"
        ]
        return sorted(jobs, key=lambda j: j["metadata"]["creationTimestamp"])


@pytest.fixture(scope="module")
def release_env(
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_run_id: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[ReleaseEnv]:
    host = ingress_host("E2E_INGRESS_HOST", rel.DEFAULT_INGRESS_HOST)
    plan = rel.ingress_plan(rel.load_values(), host)
    workdir = tmp_path_factory.mktemp("release")
    overlay = rel.write_overlay(plan, workdir)
    namespace = f"e2e-release-{e2e_run_id}"
    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        ca_cert = localcluster.ensure_tls_secret(
            e2e_cluster.context,
            namespace,
            host=host,
            secret=plan.tls_secret,
            tls_dir=workdir / "tls",
            log=print,
        )
        yield ReleaseEnv(
            namespace=namespace,
            kubectl=kubectl,
            helm=Helm(e2e_tools.helm, namespace, e2e_cluster.kubeconfig),
            host=host,
            ca_cert=ca_cert,
            values_files=(rel.DEV_VALUES, overlay),
        )


@pytest.fixture(scope="module")
def installed(release_env: ReleaseEnv, base_image: BuiltImage) -> str:
    """`helm upgrade --install` with values/dev.yaml; returns helm's output."""
    proc = release_env.upgrade(base_image)
    return f"{proc.stdout}{proc.stderr}"


def wait_for_ingress(env: ReleaseEnv, path: str = "/readyz", timeout: float = 90) -> None:
    wait_until_served(env.session(), env.https(path), timeout=timeout,
                      diagnose=lambda: namespace_summary(env.kubectl))  # fmt: skip


def create_item(session: requests.Session, url: str) -> dict[str, Any]:
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    response = session.post(
        url, json={"name": name, "description": "written by the e2e suite"}, timeout=10
    )
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    assert item["name"] == name
    return item


def code_revision(response: requests.Response) -> str:
    """/readyz reports the schema revision the serving pod's code needs: its version."""
    return str(response.json()["schema"]["code"])


def traffic(env: ReleaseEnv, item_id: int) -> tuple[RequestLoop, RequestLoop]:
    """Requests through the ingress: /readyz (which version serves) and an API read."""
    readyz = RequestLoop(
        lambda s: s.get(env.https("/readyz"), timeout=REQUEST_TIMEOUT_S),
        session_factory=env.session,
        version_of=code_revision,
        workers=2,
        pause=0.05,
    )
    items = RequestLoop(
        lambda s: s.get(env.https(f"/api/v1/items/{item_id}"), timeout=REQUEST_TIMEOUT_S),
        session_factory=env.session,
        workers=2,
        pause=0.05,
    )
    return readyz, items


def wait_for_flow(*loops: RequestLoop, from_now: bool = False) -> None:
    """Until each loop has FLOWING requests (started from now on, with from_now)."""
    for loop in loops:
        since = loop.elapsed() if from_now else 0.0
        wait_until(
            lambda loop=loop, since=since: loop.count_since(since) >= FLOWING,  # type: ignore[misc]
            what=f"{FLOWING} requests through the ingress",
            timeout=60,
            interval=0.2,
        )


def stop_all(*loops: RequestLoop) -> list[LoopReport]:
    return [loop.stop() for loop in loops]


# -- 1 ------------------------------------------------------------------------------------


def test_install_with_dev_values_migrates_becomes_ready_and_passes_helm_test(
    release_env: ReleaseEnv, installed: str, base_image: BuiltImage
) -> None:
    assert "violate PodSecurity" not in installed, installed

    jobs = release_env.migration_jobs()
    assert len(jobs) == 1, (
        f"expected one migration Job, found {[j['metadata']['name'] for j in jobs]}"
    )
    assert job_state(jobs[0]) is JobState.COMPLETE

    expected = rel.load_values().get("replicaCount", 1)
    pods = release_env.server_pods()
    assert len(pods) == expected and all(pod_ready(p) for p in pods), namespace_summary(
        release_env.kubectl
    )
    assert {app_image(p) for p in pods} == {base_image.ref}

    test_run = release_env.helm.test(rel.RELEASE)
    assert test_run.returncode == 0


# -- 2 ------------------------------------------------------------------------------------


def test_api_through_port_forward_and_through_https_ingress(
    release_env: ReleaseEnv, installed: str, base_image: BuiltImage
) -> None:
    with PortForward(release_env.kubectl, f"svc/{rel.SERVICE}", rel.SERVICE_PORT) as forward:
        local = requests.Session()
        local.trust_env = False
        assert local.get(forward.url("/livez"), timeout=10).json()["status"] == "ok"
        readyz = local.get(forward.url("/readyz"), timeout=10)
        assert readyz.status_code == 200, readyz.text
        assert readyz.json()["schema"]["code"] == base_image.code_head
        item = create_item(local, forward.url("/api/v1/items"))
        fetched = local.get(forward.url(f"/api/v1/items/{item['id']}"), timeout=10)
        assert fetched.status_code == 200 and fetched.json() == item

    wait_for_ingress(release_env)
    session = release_env.session()
    # Verified against the local CA only, with the hostname resolved to 127.0.0.1 here.
    through_ingress = session.get(release_env.https(f"/api/v1/items/{item['id']}"), timeout=10)
    assert through_ingress.status_code == 200 and through_ingress.json() == item
    created = create_item(session, release_env.https("/api/v1/items"))
    listed = session.get(release_env.https("/api/v1/items?limit=100"), timeout=10).json()
    assert {item["id"], created["id"]} <= {i["id"] for i in listed["items"]}

    plain = session.get(f"http://{release_env.host}/livez", allow_redirects=False, timeout=10)
    assert plain.status_code in (301, 302, 307, 308), "plain HTTP must redirect to HTTPS"
    assert plain.headers["Location"].startswith(f"https://{release_env.host}")


# -- 3 ------------------------------------------------------------------------------------


def test_zero_downtime_upgrade_to_an_image_with_a_new_migration(
    release_env: ReleaseEnv,
    installed: str,
    base_image: BuiltImage,
    e2e_images: ImageFactory,
) -> None:
    new = e2e_images("expand", [EXPAND_REVISION])
    session = release_env.session()
    wait_for_ingress(release_env)
    current = code_revision(session.get(release_env.https("/readyz"), timeout=10))
    assert current == base_image.code_head, "test 3 upgrades the release from the base image"
    old_image = base_image

    # Two replicas first, on the current image, so one pod always serves during the roll.
    release_env.upgrade(old_image, replicas=2)
    wait_for_ingress(release_env)
    item = create_item(session, release_env.https("/api/v1/items"))

    readyz, items = traffic(release_env, item["id"])
    readyz.start()
    items.start()
    try:
        wait_for_flow(readyz, items)
        readyz.mark("helm upgrade started")
        started = readyz.elapsed()
        upgrade = release_env.upgrade(new, replicas=2, check=False)
        finished = readyz.elapsed()
        readyz.mark(f"helm upgrade returned {upgrade.returncode}")
        if upgrade.returncode == 0:
            wait_until(
                lambda: (
                    readyz.report().last_versions(SETTLED_TAIL) == [new.code_head] * SETTLED_TAIL
                ),
                what=f"the last {SETTLED_TAIL} responses to come from the new code",
                timeout=120,
                interval=0.5,
                diagnose=lambda: readyz.report().summary(),
            )
            wait_for_flow(items, from_now=True)
    finally:
        reports = stop_all(readyz, items)
    readyz_report, items_report = reports

    assert upgrade.returncode == 0, f"helm upgrade failed:\n{upgrade.stdout}{upgrade.stderr}"
    assert readyz_report.failures == [], readyz_report.summary()
    assert items_report.failures == [], items_report.summary()
    served = [span.version for span in readyz_report.versions()]
    assert served[0] == old_image.code_head and served[-1] == new.code_head, readyz_report.summary()
    during = readyz_report.count_between(started, finished)
    assert during >= FLOWING, f"only {during} requests while helm upgrade ran: not a real test"

    deployment = release_env.kubectl.get_json("deployment", rel.DEPLOYMENT)
    assert deployment_rolled_out(deployment)
    # The old pods are terminating by now (preStop, then draining): gone from server_pods().
    assert {app_image(p) for p in release_env.server_pods()} == {new.ref}, namespace_summary(
        release_env.kubectl
    )
    body = session.get(release_env.https("/readyz"), timeout=10).json()
    assert body["schema"] == {"database": new.code_head, "code": new.code_head}


# -- 4 ------------------------------------------------------------------------------------


def test_a_failing_migration_fails_the_release_and_old_pods_keep_serving(
    release_env: ReleaseEnv,
    installed: str,
    e2e_images: ImageFactory,
) -> None:
    broken = e2e_images("fails", [EXPAND_REVISION, FAILING_REVISION])
    session = release_env.session()
    wait_for_ingress(release_env)
    before = session.get(release_env.https("/readyz"), timeout=10).json()
    serving_code = before["schema"]["code"]
    old_pod_images = {app_image(p) for p in release_env.server_pods()}
    # Same replica count as now: only the image changes, so only the migration can fail.
    replicas = release_env.kubectl.get_json("deployment", rel.DEPLOYMENT)["spec"]["replicas"]
    items_before = [create_item(session, release_env.https("/api/v1/items")) for _ in range(3)]

    readyz, reads = traffic(release_env, items_before[0]["id"])
    readyz.start()
    reads.start()
    try:
        wait_for_flow(readyz, reads)
        readyz.mark("helm upgrade (failing migration) started")
        upgrade = release_env.upgrade(
            broken,
            replicas=replicas,
            check=False,
            extra_values=rel.failing_release_values(),
            wait_timeout_s=rel.FAILING_RELEASE_TIMEOUT_S,
        )
        readyz.mark(f"helm upgrade returned {upgrade.returncode}")
        # The Job's own status, not Helm's message: Helm 3 never names the failed Job (its
        # waiter stays on the Deployment), it only reports its --timeout running out.
        job, state = wait_for_job_end(
            release_env.kubectl,
            selector=rel.MIGRATION_SELECTOR,
            image=broken.ref,
            deadline_s=rel.FAILING_JOB_DEADLINE_S,
        )
        wait_for_flow(readyz, reads, from_now=True)
    finally:
        readyz_report, reads_report = stop_all(readyz, reads)
    output = upgrade.stdout + upgrade.stderr

    # The Job fails and the release with it; the Job's log says why.
    assert state is JobState.FAILED, describe_end(job)
    assert upgrade.returncode != 0, f"helm upgrade succeeded with a failing migration:\n{output}"
    job_name = job["metadata"]["name"]
    logs = release_env.kubectl.run("logs", f"job/{job_name}", "--tail=-1").stdout
    assert FAILURE_MARKER in logs, logs
    assert release_env.helm.status(rel.RELEASE)["info"]["status"] == "failed"

    # Old pods kept serving the old code, without a single failed request.
    assert readyz_report.failures == [], readyz_report.summary()
    assert reads_report.failures == [], reads_report.summary()
    assert {s.version for s in readyz_report.versions()} == {serving_code}, readyz_report.summary()
    pods = release_env.server_pods()
    ready_images = {app_image(p) for p in pods if pod_ready(p)}
    assert ready_images == old_pod_images, namespace_summary(release_env.kubectl)
    assert sum(pod_ready(p) for p in pods) >= replicas, namespace_summary(release_env.kubectl)
    assert not any(pod_ready(p) for p in pods if app_image(p) == broken.ref), (
        "a pod of the failed release became ready"
    )

    # The data and the schema are as they were before the failed revision.
    for item in items_before:
        again = session.get(release_env.https(f"/api/v1/items/{item['id']}"), timeout=10)
        assert again.status_code == 200 and again.json() == item
    after = session.get(release_env.https("/readyz"), timeout=10).json()
    assert after["schema"] == {"database": EXPAND_REVISION.revision, "code": serving_code}
