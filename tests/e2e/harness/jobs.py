"""Wait for a Job through its own status, read with kubectl, not through Helm's waiter.

Helm 3 (and Helm 4's legacy waiter) checks a release's objects in order and stays on the
Deployment whose new pods wait for the schema, so it never reports a failed migration
Job: it only says `context deadline exceeded` when its --timeout ends. The Job's
conditions say at once whether it completed or failed, and why.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.k8s_state import JobState, job_failure_message, job_running_image, job_state
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.waiting import NotYet, wait_until

# What a Job can take beyond its activeDeadlineSeconds before its Failed condition shows:
# pod scheduling and the Job controller's own sync.
JOB_CONTROLLER_SLACK_S = 60


def finished_job(kubectl: Kubectl, *, selector: str, image: str) -> dict[str, Any]:
    """The Job running `image` once it has completed or failed; NotYet until then."""
    jobs: list[dict[str, Any]] = kubectl.get_json("jobs", "-l", selector)["items"]
    job = job_running_image(jobs, image)
    if job is None:
        names = [j.get("metadata", {}).get("name", "?") for j in jobs]
        raise NotYet(f"no Job runs {image} yet (Jobs: {', '.join(names) or 'none'})")
    state = job_state(job)
    if state is JobState.RUNNING:
        status = job.get("status", {})
        raise NotYet(
            f"Job {job['metadata']['name']} still running "
            f"(active {status.get('active', 0)}, failed {status.get('failed', 0)})"
        )
    return job


def wait_for_job_end(
    kubectl: Kubectl, *, selector: str, image: str, deadline_s: int, interval: float = 2.0
) -> tuple[dict[str, Any], JobState]:
    """The finished Job running `image` and how it ended; waits at most the Job's own
    activeDeadlineSeconds plus the controller's slack, since Kubernetes fails it by then."""
    job = wait_until(
        lambda: finished_job(kubectl, selector=selector, image=image),
        what=f"the Job running {image} to complete or fail",
        timeout=deadline_s + JOB_CONTROLLER_SLACK_S,
        interval=interval,
        retry_on=(NotYet,),
        diagnose=lambda: namespace_summary(kubectl),
    )
    return job, job_state(job)


def describe_end(job: dict[str, Any]) -> str:
    state = job_state(job)
    why = job_failure_message(job)
    return f"Job {job['metadata']['name']} {state.value}" + (f" ({why})" if why else "")
