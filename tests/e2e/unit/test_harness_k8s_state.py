"""What "complete", "failed", "ready" and "rolled out" mean for the suite's waits."""

from __future__ import annotations

from typing import Any

from tests.e2e.harness.k8s_state import (
    JobState,
    deployment_rolled_out,
    job_failure_message,
    job_state,
    pod_ready,
    pod_summary,
)


def job(*conditions: tuple[str, str], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "app-migrate-abc"},
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": f"{t}Reason", "message": f"{t} message"}
                for t, s in conditions
            ],
            **status,
        },
    }


def test_job_states() -> None:
    assert job_state({"status": {}}) is JobState.RUNNING
    assert job_state(job(active=1)) is JobState.RUNNING
    # Kubernetes 1.31+: succeeded pods and SuccessCriteriaMet come before Complete.
    assert job_state(job(("SuccessCriteriaMet", "True"), succeeded=1)) is JobState.RUNNING
    assert job_state(job(("SuccessCriteriaMet", "True"), ("Complete", "True"))) is JobState.COMPLETE
    assert job_state(job(("FailureTarget", "True"), failed=2)) is JobState.RUNNING
    assert job_state(job(("FailureTarget", "True"), ("Failed", "True"))) is JobState.FAILED
    assert job_state(job(("Complete", "False"))) is JobState.RUNNING


def test_job_failure_message() -> None:
    assert job_failure_message(job(("Failed", "True"))) == "FailedReason: Failed message"
    assert job_failure_message(job(("Complete", "True"))) == ""


def pod(ready: bool, *, deleting: bool = False, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "app-7d9-x"}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T10:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


def test_pod_ready_excludes_terminating_pods() -> None:
    assert pod_ready(pod(True))
    assert not pod_ready(pod(False))
    assert not pod_ready(pod(True, deleting=True))
    assert not pod_ready({"metadata": {}, "status": {"phase": "Pending"}})


def test_pod_summary_says_why_a_pod_waits() -> None:
    summary = pod_summary(
        pod(
            False,
            initContainerStatuses=[
                {"name": "wait-for-schema", "state": {"running": {}}, "restartCount": 0}
            ],
            containerStatuses=[
                {
                    "name": "app",
                    "state": {"waiting": {"reason": "PodInitializing"}},
                    "restartCount": 2,
                }
            ],
        )
    )
    assert summary == (
        "app-7d9-x Running not-ready init:wait-for-schema=running "
        "container:app=PodInitializing, 2 restarts"
    )


def deployment(**status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 3, **status},
    }


def test_deployment_rolled_out() -> None:
    assert deployment_rolled_out(
        deployment(replicas=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2)
    )
    # An old pod still running next to two new ones: not done.
    assert not deployment_rolled_out(deployment(replicas=3, updatedReplicas=2, availableReplicas=3))
    # New pods exist but are not available yet.
    assert not deployment_rolled_out(
        deployment(replicas=2, updatedReplicas=2, availableReplicas=1, unavailableReplicas=1)
    )
    # The controller has not seen the newest spec yet.
    stale = deployment(replicas=2, updatedReplicas=2, availableReplicas=2)
    stale["status"]["observedGeneration"] = 2
    assert not deployment_rolled_out(stale)
