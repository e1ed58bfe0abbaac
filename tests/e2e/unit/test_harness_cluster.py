"""provide_cluster drives pytest-kind's KindCluster with the repo's kind config (fake kind)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import pytest

from tests.e2e.harness import cluster as cluster_module
from tests.e2e.harness.cluster import (
    KIND_CONFIG,
    ClusterSetupError,
    provide_cluster,
    restricted_namespace_manifest,
)
from tests.e2e.harness.prerequisites import ClusterChoice
from tests.e2e.unit.standins import FakeKind


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    # KindCluster makes ./.pytest-kind/<name> wherever the process runs: keep it in tmp.
    monkeypatch.chdir(tmp_path)
    # Nothing of ours listens on 80/443 in a unit test; check a port we know is free.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setattr(cluster_module, "INGRESS_PORTS", (free,))
    return FakeKind(tmp_path, monkeypatch)


def choice(**overrides: object) -> ClusterChoice:
    values: dict[str, object] = {
        "name": "app-e2e",
        "existing_kubeconfig": None,
        "keep": False,
        "required": False,
    }
    values.update(overrides)
    return ClusterChoice(**values)  # type: ignore[arg-type]


def test_creates_from_the_repo_config_and_deletes_afterwards(
    fake_kind: FakeKind, tmp_path: Path
) -> None:
    with provide_cluster(
        choice(), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path / "st"
    ) as cluster:
        assert cluster.created_here
        assert cluster.context == "kind-app-e2e"
        assert "current-context: kind-app-e2e" in cluster.kubeconfig.read_text()
        assert fake_kind.clusters() == ["app-e2e"]
    [create] = [c for c in fake_kind.calls() if c[:2] == ["create", "cluster"]]
    assert "--name=app-e2e" in create
    assert create[create.index("--config") + 1] == str(KIND_CONFIG)
    assert fake_kind.clusters() == []


def test_an_existing_cluster_is_reused_and_never_deleted(
    fake_kind: FakeKind, tmp_path: Path
) -> None:
    fake_kind.add("app-e2e")
    with provide_cluster(
        choice(), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path / "st"
    ) as cluster:
        assert not cluster.created_here
        # KindCluster would have read an empty kubeconfig; the export wrote a real one.
        assert "kind-app-e2e" in cluster.kubeconfig.read_text()
    commands = [c[:2] for c in fake_kind.calls()]
    assert ["export", "kubeconfig"] in commands
    assert ["create", "cluster"] not in commands
    assert ["delete", "cluster"] not in commands
    assert fake_kind.clusters() == ["app-e2e"]


def test_keep_leaves_a_created_cluster_running(fake_kind: FakeKind, tmp_path: Path) -> None:
    with provide_cluster(
        choice(keep=True), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path
    ):
        pass
    assert fake_kind.clusters() == ["app-e2e"]


def test_a_given_kubeconfig_is_used_without_calling_kind(
    fake_kind: FakeKind, tmp_path: Path
) -> None:
    given = tmp_path / "their-kubeconfig"
    given.write_text("current-context: kind-dev\n")
    with provide_cluster(
        choice(name="dev", existing_kubeconfig=given, keep=True),
        kind=str(fake_kind.binary),
        kubectl="/unused",
        state_dir=tmp_path,
    ) as cluster:
        assert cluster.kubeconfig == given and not cluster.created_here
    assert fake_kind.calls() == []


def test_taken_ingress_ports_stop_creation_with_the_fix(
    fake_kind: FakeKind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        monkeypatch.setattr(cluster_module, "INGRESS_PORTS", (taken.getsockname()[1],))
        with (
            pytest.raises(ClusterSetupError, match="already in use"),
            provide_cluster(
                choice(), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path
            ),
        ):
            pass
    assert fake_kind.clusters() == []


def test_namespaces_enforce_and_warn_restricted() -> None:
    labels = restricted_namespace_manifest("e2e-x")["metadata"]["labels"]  # type: ignore[index]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


@pytest.mark.parametrize("fails", [False, True])
def test_before_delete_sees_the_cluster_and_whether_the_run_raised(
    fake_kind: FakeKind, tmp_path: Path, fails: bool
) -> None:
    seen: list[tuple[bool, list[str]]] = []

    def before_delete(raised: bool) -> None:
        seen.append((raised, fake_kind.clusters()))

    with contextlib.suppress(RuntimeError), provide_cluster(
        choice(), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path,
        before_delete=before_delete,
    ):  # fmt: skip
        if fails:
            raise RuntimeError("ingress-nginx did not become ready")
    assert seen == [(fails, ["app-e2e"])]  # called once, while the cluster still existed
    assert fake_kind.clusters() == []


def test_before_delete_is_not_called_for_a_kept_cluster(
    fake_kind: FakeKind, tmp_path: Path
) -> None:
    called: list[bool] = []
    with provide_cluster(
        choice(keep=True), kind=str(fake_kind.binary), kubectl="/unused", state_dir=tmp_path,
        before_delete=called.append,
    ):  # fmt: skip
        pass
    assert called == []
    assert fake_kind.clusters() == ["app-e2e"]
