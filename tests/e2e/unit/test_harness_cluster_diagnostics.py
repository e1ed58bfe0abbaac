"""The whole-cluster diagnostics of a failed run (fake kind and kubectl, real processes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.harness.cluster_diagnostics import CLUSTER_LISTINGS, collect, listings, main
from tests.e2e.unit.standins import FAKE_KUBECTL, FakeKind
from tools import localcluster


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    kind = FakeKind(tmp_path, monkeypatch)
    kind.add("app-e2e")
    return kind


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    wrapper = tmp_path / "kubectl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KUBECTL}" "$@"\n')
    wrapper.chmod(0o755)
    log = tmp_path / "kubectl-calls.jsonl"
    monkeypatch.setenv("FAKE_KUBECTL_LOG", str(log))
    monkeypatch.setenv("FAKE_KUBECTL_GET_RAW", "NAMESPACE  LAST SEEN  TYPE  REASON  OBJECT")
    return str(wrapper), log


def test_collects_kind_logs_events_objects_nodes_and_ingress_nginx(
    fake_kind: FakeKind, kubectl: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(localcluster.FROM_SOURCE_ENV, raising=False)
    binary, log = kubectl
    dest = tmp_path / "artifacts" / "cluster"
    problems = collect(kind=str(fake_kind.binary), kubectl=binary, cluster="app-e2e", dest=dest)
    assert problems == []
    assert (dest / "kind-logs" / "app-e2e-control-plane" / "kubelet.log").is_file()
    assert ["export", "logs", str(dest / "kind-logs"), "--name", "app-e2e"] in fake_kind.calls()
    assert {p.name for p in dest.iterdir()} == {
        "kind-logs", *listings("ingress-nginx", "deployment/ingress-nginx-controller")
    }  # fmt: skip
    assert set(CLUSTER_LISTINGS) < set(listings("x", "y"))
    assert "LAST SEEN" in (dest / "events-all-namespaces.txt").read_text()
    ingress_log = (dest / "ingress-nginx-controller.log").read_text()
    assert "logs deployment/ingress-nginx-controller --all-containers" in ingress_log
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # Every kubectl call reads the cluster's kubeconfig from a private temporary file ...
    kubeconfigs = {c[0] for c in calls}
    assert len(kubeconfigs) == 1 and kubeconfigs.pop().startswith("--kubeconfig=")
    # ... never from the uploaded directory, and no file there holds its credentials.
    assert not any("token: fake" in p.read_text() for p in dest.rglob("*") if p.is_file())
    assert ["get", "events", "--all-namespaces", "-o", "wide", "--sort-by=.lastTimestamp"] in [
        c[1:] for c in calls
    ]
    assert ["logs", "--namespace=ingress-nginx", "deployment/ingress-nginx-controller",
            "--all-containers", "--prefix", "--tail=5000"] in [c[1:] for c in calls]  # fmt: skip


def test_a_cluster_built_from_source_keeps_traefiks_logs(
    fake_kind: FakeKind, kubectl: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(localcluster.FROM_SOURCE_ENV, "1")
    dest = tmp_path / "out"
    problems = collect(kind=str(fake_kind.binary), kubectl=kubectl[0], cluster="app-e2e", dest=dest)
    assert problems == []
    assert not (dest / "ingress-nginx-controller.log").exists()
    calls = [json.loads(line)[1:] for line in kubectl[1].read_text().splitlines()]
    assert ["logs", "--namespace=ingress-traefik", "deployment/traefik", "--all-containers",
            "--prefix", "--tail=5000"] in calls  # fmt: skip
    assert (dest / "ingress-traefik-pods-describe.txt").is_file()


def test_one_failing_part_is_noted_and_the_rest_still_written(
    fake_kind: FakeKind, kubectl: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(localcluster.FROM_SOURCE_ENV, raising=False)
    monkeypatch.setenv("FAKE_KUBECTL_FAIL", "logs")
    dest = tmp_path / "out"
    problems = collect(kind=str(fake_kind.binary), kubectl=kubectl[0], cluster="app-e2e", dest=dest)
    assert problems == ["ingress-nginx-controller.log: kubectl exited 1"]
    assert "logs failed (fake)" in (dest / "ingress-nginx-controller.log").read_text()
    assert (dest / "nodes-describe.txt").is_file()
    assert (dest / "problems.txt").read_text() == "ingress-nginx-controller.log: kubectl exited 1\n"


def test_cli_on_a_cluster_that_is_gone_says_so_and_exits_1(
    fake_kind: FakeKind,
    kubectl: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--name", "gone", "--out", str(tmp_path / "out"), "--kind", str(fake_kind.binary),
                 "--kubectl", kubectl[0]])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "kind export logs exited 1" in err and "kind get kubeconfig exited 1" in err


def test_cli_names_a_missing_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--name", "app-e2e", "--out", str(tmp_path), "--kind", str(tmp_path / "nokind")])
    assert code == 1
    assert "cannot run" in capsys.readouterr().err
