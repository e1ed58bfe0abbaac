"""Test 6 on a live kind cluster: a second skaffold session on a release an earlier one
left behind (`make dev` again after a killed session, `skaffold run` twice) succeeds.

skaffold labels what it deploys with skaffold.dev/run-id, new in every session. Were it on
the migration Job's pod template, the second session's Helm upgrade would patch an
immutable field of the same-named Job and the API server would refuse it; skaffold.yaml's
resourceSelector keeps it off (tests/local/test_skaffold_config.py renders why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import commands
from tests.e2e.harness import release as rel
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.hot_reload import move_skaffold_ingress, skaffold_run_argv
from tests.e2e.harness.k8s_state import JobState, job_state, live_pods, pod_ready
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import ROOT, E2ETools, restricted_namespace, skaffold_environment
from tests.e2e.harness.migration_images import copy_source

pytestmark = pytest.mark.e2e

RUN_ID_LABEL = "skaffold.dev/run-id"
SESSION_TIMEOUT_S = 900  # the first session builds the dev image (cached by the hot-reload test)


def migration_job(kubectl: Kubectl) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = kubectl.get_json("jobs", "-l", rel.MIGRATION_SELECTOR)["items"]
    assert len(jobs) == 1, f"expected one migration Job:\n{namespace_summary(kubectl)}"
    return jobs[0]


def test_a_second_skaffold_session_on_the_same_release_succeeds(
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_skaffold: str,
    e2e_run_id: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    context = copy_source(ROOT, tmp_path / "src")
    # No Ingress: this test is about the Job, and a host of its own would need its own TLS.
    move_skaffold_ingress(context, {"ingress": {"enabled": False}})
    namespace = f"e2e-sessions-{e2e_run_id}"
    argv = skaffold_run_argv(
        e2e_skaffold,
        namespace=namespace,
        kube_context=e2e_cluster.context,
        tag=f"e2e-{e2e_run_id}-sessions",  # one tag for both: the code did not change
    )
    env = skaffold_environment(e2e_tools, e2e_skaffold)

    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        commands.run(argv, cwd=context, env=env, timeout=SESSION_TIMEOUT_S)
        first = migration_job(kubectl)
        second_session = commands.run(
            argv, cwd=context, env=env, timeout=SESSION_TIMEOUT_S, check=False
        )
        output = second_session.stdout + second_session.stderr
        assert second_session.returncode == 0, f"the second skaffold session failed:\n{output}"
        second = migration_job(kubectl)
        pods = live_pods(kubectl.get_json("pods", "-l", rel.SERVER_SELECTOR)["items"])

    # The same Job, untouched but for its own labels: skaffold did label it each session.
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert job_state(second) is JobState.COMPLETE
    first_run = first["metadata"]["labels"].get(RUN_ID_LABEL)
    second_run = second["metadata"]["labels"].get(RUN_ID_LABEL)
    assert first_run and second_run and first_run != second_run
    assert RUN_ID_LABEL not in second["spec"]["template"]["metadata"]["labels"]
    assert pods and all(pod_ready(p) for p in pods)
