"""Images bound for `kind load` carry no default attestation, and a load failure names
its known cause (kind issues 3795, 4066). A fake kind and fake docker, real make."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness.images import KindLoadError, kind_load
from tests.e2e.harness.live import DOCKER_WITHOUT_BUILDX, E2ETools, skaffold_environment
from tests.e2e.unit.standins import FakeKind
from tools.prereq import find_tool, missing

ROOT = Path(__file__).resolve().parents[3]
# What kind 0.32 prints when the node's containerd cannot import the saved image.
DIGEST_NOT_FOUND = (
    'ERROR: failed to load image: command "docker exec --privileged -i app-e2e-control-plane '
    'ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" '
    "failed with error: exit status 1\nCommand Output: ctr: content digest "
    "sha256:44b2c602cb838fd6a647d6d48cf0e6f56227351b2903263d60637ebd26545a8d: not found"
)


@pytest.fixture
def fake_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKind:
    return FakeKind(tmp_path, monkeypatch)


def test_a_load_runs_kind_for_the_cluster(fake_kind: FakeKind) -> None:
    kind_load(kind=str(fake_kind.binary), cluster="app-e2e", image="service:e2e-1-base")
    assert fake_kind.calls() == [
        ["load", "docker-image", "--name", "app-e2e", "service:e2e-1-base"]
    ]


def test_a_missing_content_digest_is_named_with_its_cause_and_fixes(
    fake_kind: FakeKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KIND_LOAD_ERROR", DIGEST_NOT_FOUND)
    with pytest.raises(KindLoadError) as excinfo:
        kind_load(kind=str(fake_kind.binary), cluster="app-e2e", image="service:e2e-1-base")
    message = str(excinfo.value)
    assert "kind issues 3795 and 4066" in message
    assert "containerd image store" in message
    assert "BUILDX_NO_DEFAULT_ATTESTATIONS=1" in message
    assert '"containerd-snapshotter": false' in message
    assert "sha256:44b2c602" in message  # kind's own output follows


def test_any_other_load_failure_keeps_kinds_output_without_guessing(
    fake_kind: FakeKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KIND_LOAD_ERROR", 'ERROR: image: "service:nope" not present locally')
    with pytest.raises(KindLoadError) as excinfo:
        kind_load(kind=str(fake_kind.binary), cluster="app-e2e", image="service:nope")
    assert "not present locally" in str(excinfo.value)
    assert "3795" not in str(excinfo.value)


# -- what the build tools see ---------------------------------------------------------------


def env_recorder(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A stand-in executable that writes BUILDX_NO_DEFAULT_ATTESTATIONS as it saw it."""
    seen = tmp_path / f"{name}-saw"
    script = tmp_path / name
    script.write_text(
        f'#!/bin/sh\nprintf "%s" "${{BUILDX_NO_DEFAULT_ATTESTATIONS-unset}}" > "{seen}"\n'
    )
    script.chmod(0o755)
    return script, seen


def make_binary() -> str:
    make = find_tool("make", "MAKE")
    if make is None:
        missing("`make` not found (install it with: apt-get install make)")
    assert make is not None
    return make


@pytest.mark.parametrize("target", ["image", "image-dev"])
def test_make_image_builds_without_default_attestations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.delenv("BUILDX_NO_DEFAULT_ATTESTATIONS", raising=False)
    docker, seen = env_recorder(tmp_path, "docker")
    subprocess.run(
        [make_binary(), "-C", str(ROOT), "--no-print-directory", target, f"DOCKER={docker}",
         "TAG=envcheck", "CA_BUNDLE="],
        capture_output=True, text=True, timeout=60, check=True, env=dict(os.environ),
    )  # fmt: skip
    assert seen.read_text() == "1"


def test_make_dev_hands_skaffold_no_default_attestations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make dev` runs skaffold (through tools.deploy), which builds with the docker CLI."""
    monkeypatch.delenv("BUILDX_NO_DEFAULT_ATTESTATIONS", raising=False)
    python, seen = env_recorder(tmp_path, "python")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than requirements-dev.lock: no venv rebuild
    subprocess.run(
        [make_binary(), "-C", str(ROOT), "--no-print-directory", "dev", f"VENV={venv}",
         f"PY={python}"],
        capture_output=True, text=True, timeout=60, check=True, env=dict(os.environ),
    )  # fmt: skip
    assert seen.read_text() == "1"


def test_the_suites_skaffold_runs_our_tools_first_without_default_attestations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin")
    monkeypatch.delenv("BUILDX_NO_DEFAULT_ATTESTATIONS", raising=False)
    tools = E2ETools(docker="/usr/bin/docker", kind="/repo/bin/kind", kubectl="/repo/bin/kubectl",
                     helm="/repo/bin/helm", make="/usr/bin/make")  # fmt: skip
    env = skaffold_environment(tools, "/repo/bin/skaffold", buildx=lambda docker: True)
    assert env["BUILDX_NO_DEFAULT_ATTESTATIONS"] == "1"
    assert env["PATH"].split(os.pathsep)[:3] == ["/repo/bin", "/usr/bin", "/usr/local/bin"]
    assert "SKAFFOLD_REAL_DOCKER" not in env


def test_without_buildx_skaffolds_docker_build_drops_only_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """skaffold adds buildx's --load to `docker build`; a docker CLI without buildx refuses
    it, so the suite's skaffold then runs docker through the shim, which drops it."""
    real = tmp_path / "docker"
    real.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    real.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin")
    tools = E2ETools(docker=str(real), kind="/repo/bin/kind", kubectl="/repo/bin/kubectl",
                     helm="/repo/bin/helm", make="/usr/bin/make")  # fmt: skip
    env = skaffold_environment(tools, "/repo/bin/skaffold", buildx=lambda docker: False)
    assert env["PATH"].split(os.pathsep)[0] == str(DOCKER_WITHOUT_BUILDX)
    assert env["SKAFFOLD_REAL_DOCKER"] == str(real)

    def docker(*args: str) -> list[str]:
        shim = DOCKER_WITHOUT_BUILDX / "docker"
        done = subprocess.run([str(shim), *args], env=env, capture_output=True, text=True,
                              timeout=30, check=True)  # fmt: skip
        return done.stdout.splitlines()

    built = docker("build", ".", "--load", "-t", "service:x y")
    assert built == ["build", ".", "-t", "service:x y"]
    assert docker("run", "--load") == ["run", "--load"]
