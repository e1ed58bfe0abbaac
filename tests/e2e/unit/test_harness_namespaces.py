"""A test namespace: created restricted, dumped when a test failed, deleted without waiting."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.harness import live
from tests.e2e.unit.standins import FakeKubectl


def fake_request(failed: int = 0) -> Any:
    return SimpleNamespace(session=SimpleNamespace(testsfailed=failed))


def test_the_namespace_is_deleted_without_waiting(
    fake_kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2E_KEEP_NAMESPACES", raising=False)
    with live.restricted_namespace(fake_kubectl.kubectl, "e2e-x", fake_request()) as scoped:
        assert scoped.namespace == "e2e-x"
    commands = [[a for a in argv if not a.startswith("--kubeconfig=")] for argv in
                fake_kubectl.invocations()]  # fmt: skip
    assert commands[0][-3:] == ["apply", "-f", "-"]
    assert commands[-1][-4:] == ["delete", "namespace", "e2e-x", "--wait=false"]


def test_a_failed_test_dumps_the_namespace_before_it_goes(
    fake_kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("E2E_KEEP_NAMESPACES", raising=False)
    monkeypatch.setattr(live, "ARTIFACTS_DIR", tmp_path / "artifacts")
    fake_kubectl.set(get_raw="no resources found")
    request = fake_request()
    with live.restricted_namespace(fake_kubectl.kubectl, "e2e-y", request):
        request.session.testsfailed = 1
    assert (tmp_path / "artifacts" / "e2e-y" / "events.txt").is_file()
    assert fake_kubectl.invocations()[-1][-4:] == ["delete", "namespace", "e2e-y", "--wait=false"]
