"""Read the state of Jobs, Pods and Deployments from `kubectl get -o json` output.

Pure functions over the API objects, so the rules (what "complete", "ready" and
"rolled out" mean) are unit-tested here and the live suite only fetches JSON.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class JobState(Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


def _true_conditions(obj: dict[str, Any]) -> set[str]:
    return {
        cond["type"]
        for cond in obj.get("status", {}).get("conditions") or []
        if cond.get("status") == "True"
    }


def job_state(job: dict[str, Any]) -> JobState:
    """A Job is done only when the controller says so (condition Complete or Failed).

    Counting `status.succeeded` alone is not enough: since Kubernetes 1.31 the
    controller first sets SuccessCriteriaMet/FailureTarget and only then the final
    condition, once the pods are gone.
    """
    conditions = _true_conditions(job)
    if "Failed" in conditions:
        return JobState.FAILED
    if "Complete" in conditions:
        return JobState.COMPLETE
    return JobState.RUNNING


def job_failure_message(job: dict[str, Any]) -> str:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"{cond.get('reason', '?')}: {cond.get('message', '')}".strip()
    return ""


def pod_ready(pod: dict[str, Any]) -> bool:
    return pod.get("metadata", {}).get("deletionTimestamp") is None and "Ready" in _true_conditions(
        pod
    )


def live_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods not being deleted. A replaced pod stays listed while it terminates (preStop
    sleep plus draining, up to half a minute) though the Service no longer sends it traffic."""
    return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]


def job_running_image(jobs: list[dict[str, Any]], image: str) -> dict[str, Any] | None:
    """The newest of `jobs` whose pod template runs `image` (each image gets its own Job)."""
    matching = [
        job
        for job in jobs
        if any(
            c.get("image") == image
            for c in job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        )
    ]
    matching.sort(key=lambda job: job.get("metadata", {}).get("creationTimestamp", ""))
    return matching[-1] if matching else None


def pod_summary(pod: dict[str, Any]) -> str:
    """One line a person can read: name, phase, readiness and why each container waits."""
    meta = pod.get("metadata", {})
    status = pod.get("status", {})
    parts = [meta.get("name", "?"), status.get("phase", "?")]
    parts.append("ready" if pod_ready(pod) else "not-ready")
    if meta.get("deletionTimestamp"):
        parts.append("terminating")
    for kind, key in (("init", "initContainerStatuses"), ("container", "containerStatuses")):
        for cs in status.get(key) or []:
            state = cs.get("state", {})
            if "waiting" in state:
                detail = state["waiting"].get("reason", "waiting")
            elif "terminated" in state:
                term = state["terminated"]
                detail = f"terminated({term.get('reason', '?')}, exit {term.get('exitCode', '?')})"
            else:
                detail = "running"
            restarts = cs.get("restartCount", 0)
            suffix = f", {restarts} restarts" if restarts else ""
            parts.append(f"{kind}:{cs.get('name', '?')}={detail}{suffix}")
    return " ".join(parts)


def deployment_rolled_out(deployment: dict[str, Any]) -> bool:
    """The same rule as `kubectl rollout status`: the newest spec is fully available.

    Every replica runs the current template, all are available, and none of an older
    ReplicaSet remain (status.replicas counts old and new pods together).
    """
    meta = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    want = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 1)
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and not status.get("unavailableReplicas")
    )
