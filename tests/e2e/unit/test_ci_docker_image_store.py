"""scripts/ci/docker-classic-image-store.sh: the runner's Docker leaves the containerd image
store (kind issues 3795, 4066) and keeps its other settings. Run for real on a temporary
daemon.json, with a stand-in for the restart and for `docker info`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "ci" / "docker-classic-image-store.sh"
CLASSIC = '[["Backing Filesystem","extfs"],["Supports d_type","true"]]'
CONTAINERD = '[["driver-type","io.containerd.snapshotter.v1"]]'


def run(tmp_path: Path, config: Path, driver_status: str) -> subprocess.CompletedProcess[str]:
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\necho '{driver_status}'\n")
    docker.chmod(0o755)
    restarted = tmp_path / "restarted"
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "DOCKER_DAEMON_CONFIG": str(config),
            "DOCKER_RESTART": f"touch {restarted}",
            "DOCKER": str(docker),
        },
    )


def test_turns_the_snapshotter_off_keeps_other_settings_and_restarts(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"exec-opts": ["native.cgroupdriver=cgroupfs"],
                                  "features": {"buildkit": True}}))  # fmt: skip
    proc = run(tmp_path, config, CLASSIC)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(config.read_text()) == {
        "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "features": {"buildkit": True, "containerd-snapshotter": False},
    }
    assert (tmp_path / "restarted").exists()


def test_a_missing_config_is_created(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "docker" / "daemon.json"
    assert run(tmp_path, config, CLASSIC).returncode == 0
    assert json.loads(config.read_text()) == {"features": {"containerd-snapshotter": False}}


@pytest.mark.parametrize(
    ("content", "driver_status", "says"),
    [
        ("{not json", CLASSIC, "is not valid JSON"),
        ("{}", CONTAINERD, "still uses the containerd image store"),
    ],
)
def test_fails_loudly(tmp_path: Path, content: str, driver_status: str, says: str) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(content)
    proc = run(tmp_path, config, driver_status)
    assert proc.returncode != 0
    assert says in proc.stderr
