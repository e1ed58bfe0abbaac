"""Test 5 on a live kind cluster: `skaffold dev` serves a changed handler within seconds,
by syncing the file into the running container (Flask reloader), without an image rebuild.

skaffold watches a temporary copy of the repository, so the edit never touches the
working tree. The dev profile is used as `make dev` uses it; only the namespace, the
Ingress hostname and the image tag differ (see harness/hot_reload.py).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.harness import release as rel
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.hot_reload import (
    HANDLER_FILE,
    add_marker_to_livez,
    marker_in,
    move_skaffold_ingress,
    skaffold_dev_argv,
)
from tests.e2e.harness.k8s_state import live_pods, pod_ready
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import (
    ROOT,
    E2ETools,
    app_image,
    ingress_host,
    restricted_namespace,
    skaffold_environment,
)
from tests.e2e.harness.migration_images import copy_source
from tests.e2e.harness.port_forward import PortForward
from tests.e2e.harness.skaffold_dev import WATCHING, SkaffoldDev, rebuild_lines, sync_lines
from tests.e2e.harness.waiting import NotYet, answered, wait_until
from tools import localcluster

pytestmark = pytest.mark.e2e

DEFAULT_DEV_HOST = "app-e2e-dev.localdev.me"
FIRST_DEPLOY_TIMEOUT_S = 900  # first dev image build and the dev database start
RELOAD_TIMEOUT_S = 90  # generous: a deadline for a broken loop, not a speed target


def the_server_pod(kubectl: Kubectl) -> dict[str, Any]:
    pods = live_pods(kubectl.get_json("pods", "-l", rel.SERVER_SELECTOR)["items"])
    ready = [p for p in pods if pod_ready(p)]
    if len(ready) != 1 or len(pods) != 1:
        raise NotYet(f"{len(ready)} of {len(pods)} server pods ready")
    return ready[0]


def livez(forward: PortForward) -> Any:
    forward.ensure_alive()
    return answered(lambda: requests.get(forward.url("/livez"), timeout=5)).json()


def test_skaffold_dev_serves_a_changed_handler_without_an_image_rebuild(
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_skaffold: str,
    e2e_run_id: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    record_property: Any,
) -> None:
    host = ingress_host("E2E_DEV_INGRESS_HOST", DEFAULT_DEV_HOST)
    plan = rel.ingress_plan(rel.load_values(), host)
    context = copy_source(ROOT, tmp_path / "src")
    move_skaffold_ingress(context, plan.overlay)
    namespace = f"e2e-dev-{e2e_run_id}"
    argv = skaffold_dev_argv(
        e2e_skaffold,
        namespace=namespace,
        kube_context=e2e_cluster.context,
        tag=f"e2e-{e2e_run_id}-dev",
    )
    env = skaffold_environment(e2e_tools, e2e_skaffold)

    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        localcluster.ensure_tls_secret(
            e2e_cluster.context,
            namespace,
            host=host,
            secret=plan.tls_secret,
            tls_dir=tmp_path / "tls",
            log=print,
        )
        with SkaffoldDev(argv, cwd=context, env=env) as dev:
            dev.wait_for(WATCHING, timeout=FIRST_DEPLOY_TIMEOUT_S)
            pod = wait_until(
                lambda: the_server_pod(kubectl),
                what="the dev pod to be ready",
                timeout=180,
                interval=1,
                retry_on=(NotYet,),
                diagnose=lambda: namespace_summary(kubectl),
            )
            with PortForward(kubectl, f"svc/{rel.SERVICE}", rel.SERVICE_PORT) as forward:
                before = wait_until(
                    lambda: livez(forward), what="/livez", timeout=60, retry_on=(NotYet,)
                )
                assert marker_in(before) is None

                marker = uuid.uuid4().hex
                handler = context / HANDLER_FILE
                since = dev.line_count()
                changed_at = time.monotonic()
                handler.write_text(add_marker_to_livez(handler.read_text(), marker))

                def new_response() -> Any:
                    body = livez(forward)
                    if marker_in(body) != marker:
                        raise NotYet(f"/livez still answers {body}")
                    return body

                after = wait_until(
                    new_response,
                    what="/livez to answer with the changed handler",
                    timeout=RELOAD_TIMEOUT_S,
                    interval=0.25,
                    retry_on=(NotYet,),
                    diagnose=lambda: dev.output_tail(),
                )
                reload_seconds = time.monotonic() - changed_at
            output_after_change = dev.lines(since)
            pod_after = kubectl.get_json("pod", pod["metadata"]["name"])

    record_property("hot_reload_seconds", round(reload_seconds, 2))
    print(f"[e2e] the changed handler answered {reload_seconds:.1f}s after the edit")
    assert after["status"] == before["status"]  # the handler's own answer is kept
    assert sync_lines(output_after_change), "\n".join(output_after_change)
    assert rebuild_lines(output_after_change) == [], "\n".join(output_after_change)
    # Same pod, same container, same image: the file was synced, nothing was replaced.
    assert pod_after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert app_image(pod_after) == app_image(pod)
    restarts = {c["name"]: c["restartCount"] for c in pod["status"]["containerStatuses"]}
    restarts_after = {
        c["name"]: c["restartCount"] for c in pod_after["status"]["containerStatuses"]
    }
    assert restarts_after == restarts
