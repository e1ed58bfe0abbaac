"""Kubectl runs the binary with the kubeconfig and namespace flags and reads its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness.commands import CommandError
from tests.e2e.harness.k8s_state import JobState, job_state
from tests.e2e.harness.waiting import NotYet, WaitTimeoutError, wait_until
from tests.e2e.unit.standins import FakeKubectl


def write_sequence(path: Path, documents: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps(documents))
    return path


def running_job() -> dict[str, object]:
    return {"status": {"active": 1}}


def complete_job() -> dict[str, object]:
    return {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}


def test_get_json_passes_kubeconfig_and_namespace(
    fake_kubectl: FakeKubectl, tmp_path: Path
) -> None:
    fake_kubectl.set(get_sequence=str(write_sequence(tmp_path / "seq.json", [complete_job()])))
    assert fake_kubectl.kubectl.get_json("job", "app-migrate") == complete_job()
    [argv] = fake_kubectl.invocations()
    assert argv == [
        f"--kubeconfig={tmp_path / 'kubeconfig'}",
        "--namespace=e2e",
        "get",
        "job",
        "app-migrate",
        "-o",
        "json",
    ]


def test_waiting_for_a_job_through_kubectl(fake_kubectl: FakeKubectl, tmp_path: Path) -> None:
    sequence = [running_job(), running_job(), complete_job()]
    fake_kubectl.set(get_sequence=str(write_sequence(tmp_path / "seq.json", sequence)))

    def complete() -> bool:
        state = job_state(fake_kubectl.kubectl.get_json("job", "app-migrate"))
        if state is not JobState.COMPLETE:
            raise NotYet(f"job is {state.value}")
        return True

    assert wait_until(complete, what="job", timeout=30, interval=0.01, retry_on=(NotYet,))
    assert len(fake_kubectl.invocations()) == 3


def test_a_job_that_never_completes_times_out_with_its_state(
    fake_kubectl: FakeKubectl, tmp_path: Path
) -> None:
    fake_kubectl.set(get_sequence=str(write_sequence(tmp_path / "seq.json", [running_job()])))

    def complete() -> bool:
        state = job_state(fake_kubectl.kubectl.get_json("job", "app-migrate"))
        if state is not JobState.COMPLETE:
            raise NotYet(f"job is {state.value}")
        return True

    with pytest.raises(WaitTimeoutError, match="last seen: NotYet: job is running"):
        wait_until(complete, what="job", timeout=0.3, interval=0.05, retry_on=(NotYet,))


def test_a_failing_command_reports_its_stderr(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.set(fail="delete")
    with pytest.raises(CommandError) as caught:
        fake_kubectl.kubectl.run("delete", "namespace", "e2e")
    assert caught.value.returncode == 1
    assert "error: delete failed (fake)" in str(caught.value)
    assert "delete namespace e2e" in str(caught.value)


def test_output_that_is_not_json_is_reported_with_the_output(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.set(get_raw="No resources found in e2e namespace.")
    with pytest.raises(AssertionError, match="printed something that is not JSON") as caught:
        fake_kubectl.kubectl.get_json("pods")
    assert "No resources found in e2e namespace." in str(caught.value)
