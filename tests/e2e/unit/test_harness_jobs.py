"""The failed-migration test finds its Job through kubectl (fake kubectl, real processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import jobs as jobs_module
from tests.e2e.harness.jobs import describe_end, wait_for_job_end
from tests.e2e.harness.k8s_state import JobState, job_running_image, live_pods
from tests.e2e.harness.waiting import WaitTimeoutError
from tests.e2e.unit.standins import FakeKubectl

SELECTOR = "app.kubernetes.io/instance=app,app.kubernetes.io/component=migration"


def job(name: str, image: str, created: str, *conditions: str, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"template": {"spec": {"containers": [{"name": "migrate", "image": image}]}}},
        "status": {
            "conditions": [
                {"type": c, "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}
                for c in conditions
            ],
            **status,
        },
    }  # fmt: skip


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "List", "items": list(items)}


OLD = job("app-migrate-1111", "service:e2e-base", "2026-12-04T10:00:00Z", "Complete")


def test_the_job_of_an_image_is_the_newest_running_it() -> None:
    older = job("app-migrate-2222", "service:e2e-fails", "2026-12-04T10:05:00Z", "Failed")
    newer = job("app-migrate-3333", "service:e2e-fails", "2026-12-04T10:09:00Z", active=1)
    assert job_running_image([newer, OLD, older], "service:e2e-fails") is newer
    assert job_running_image([OLD], "service:e2e-fails") is None


def test_terminating_pods_are_not_live() -> None:
    serving = {"metadata": {"name": "new"}}
    leaving = {"metadata": {"name": "old", "deletionTimestamp": "2026-12-04T10:00:00Z"}}
    assert live_pods([leaving, serving]) == [serving]


def test_waits_for_the_images_job_to_fail_and_returns_it(
    fake_kubectl: FakeKubectl, tmp_path: Path
) -> None:
    image, created = "service:e2e-fails", "2026-12-04T10:05:00Z"
    sequence = [
        listing(OLD),  # the upgrade has not created the new Job yet
        listing(OLD, job("app-migrate-2222", image, created, active=1)),
        # Kubernetes 1.31+: FailureTarget first, Failed once the pods are gone.
        listing(OLD, job("app-migrate-2222", image, created, "FailureTarget", failed=3)),
        listing(OLD, job("app-migrate-2222", image, created, "Failed", failed=3)),
    ]
    (tmp_path / "seq.json").write_text(json.dumps(sequence))
    fake_kubectl.set(get_sequence=str(tmp_path / "seq.json"))
    found, state = wait_for_job_end(
        fake_kubectl.kubectl, selector=SELECTOR, image=image, deadline_s=30, interval=0.01
    )
    assert state is JobState.FAILED
    assert found["metadata"]["name"] == "app-migrate-2222"
    assert describe_end(found) == (
        "Job app-migrate-2222 failed (BackoffLimitExceeded: Job has reached the specified "
        "backoff limit)"
    )
    gets = fake_kubectl.invocations()
    assert len(gets) == 4
    assert gets[0][2:] == ["get", "jobs", "-l", SELECTOR, "-o", "json"]


def test_the_wait_is_sized_to_the_job_and_says_what_it_saw(
    fake_kubectl: FakeKubectl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = "service:e2e-fails"
    stuck = listing(job("app-migrate-2222", image, "2026-12-04T10:05:00Z", active=1, failed=1))
    (tmp_path / "seq.json").write_text(json.dumps([stuck]))
    fake_kubectl.set(get_sequence=str(tmp_path / "seq.json"))
    monkeypatch.setattr(jobs_module, "JOB_CONTROLLER_SLACK_S", 0)
    with pytest.raises(WaitTimeoutError) as excinfo:
        wait_for_job_end(
            fake_kubectl.kubectl, selector=SELECTOR, image=image, deadline_s=1, interval=0.05
        )
    message = str(excinfo.value)
    assert "after 1s" in message
    assert "Job app-migrate-2222 still running (active 1, failed 1)" in message
    assert "--- diagnostics ---" in message
