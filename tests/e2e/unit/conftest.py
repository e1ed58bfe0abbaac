"""Fixtures for the harness unit tests; the stand-ins themselves live in standins.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.unit.standins import FAKE_KUBECTL, FakeKubectl, RunningServer, serving


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    wrapper = tmp_path / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KUBECTL}" "$@"\n')
    wrapper.chmod(0o755)
    log = tmp_path / "kubectl-invocations.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    kubectl = Kubectl(binary=str(wrapper), kubeconfig=tmp_path / "kubeconfig", namespace="e2e")
    return FakeKubectl(kubectl=kubectl, log=log, monkeypatch=monkeypatch)


@pytest.fixture
def http_server() -> Iterator[RunningServer]:
    with serving() as running:
        yield running


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stand-ins listen on 127.0.0.1; a proxy from the environment must not intercept.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
