"""SkaffoldDev: waits on skaffold's output, tells a sync from a rebuild, stops like Ctrl+C."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.e2e.harness.skaffold_dev import (
    SYNCING,
    WATCHING,
    SkaffoldDev,
    SkaffoldExitError,
    rebuild_lines,
    sync_lines,
)

FAKE_SKAFFOLD = Path(__file__).with_name("fake_skaffold.py")


def fake_skaffold(tmp_path: Path, mode: str) -> tuple[SkaffoldDev, Path]:
    watched = tmp_path / "health.py"
    watched.write_text("v1\n")
    env = {**os.environ, "FAKE_SKAFFOLD_MODE": mode, "FAKE_SKAFFOLD_WATCH": str(watched)}
    return SkaffoldDev([sys.executable, str(FAKE_SKAFFOLD)], cwd=tmp_path, env=env), watched


def touch(path: Path) -> None:
    # A later mtime even on filesystems with coarse timestamps.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_change_that_syncs_is_told_apart_from_the_first_build(tmp_path: Path) -> None:
    dev, watched = fake_skaffold(tmp_path, "sync")
    with dev:
        first_watch = dev.wait_for(WATCHING, timeout=30)
        assert rebuild_lines(dev.lines()[:first_watch])  # the initial build is visible
        since = dev.line_count()
        touch(watched)
        dev.wait_for(SYNCING, since=since, timeout=30)
        dev.wait_for(WATCHING, since=since, timeout=30)
        after = dev.lines(since)
    assert sync_lines(after) == ["Syncing 1 files for service:e2e-1-dev"]
    assert rebuild_lines(after) == []
    # stop() sent Ctrl+C: skaffold's cleanup ran and it exited by itself.
    assert "Cleaning up..." in dev.lines()


def test_a_rebuild_after_the_change_is_detected(tmp_path: Path) -> None:
    dev, watched = fake_skaffold(tmp_path, "rebuild")
    with dev:
        dev.wait_for(WATCHING, timeout=30)
        since = dev.line_count()
        touch(watched)
        dev.wait_for(WATCHING, since=since + 1, timeout=30)
        after = dev.lines(since)
    assert sync_lines(after) == []
    assert rebuild_lines(after) == ["Generating tags...", "Building [service]..."]


def test_skaffold_exiting_early_fails_the_wait_with_its_output(tmp_path: Path) -> None:
    dev, _ = fake_skaffold(tmp_path, "crash")
    with dev, pytest.raises(SkaffoldExitError) as caught:
        dev.wait_for(WATCHING, timeout=30)
    assert "exited 1" in str(caught.value)
    assert "build [service] failed" in str(caught.value)


def test_a_skaffold_that_ignores_ctrl_c_is_killed(tmp_path: Path) -> None:
    dev, _ = fake_skaffold(tmp_path, "stubborn")
    with dev:
        dev.wait_for(WATCHING, timeout=30)
        code = dev.stop(timeout=1)
    assert code == -9  # SIGKILL after Ctrl+C was ignored
    assert "Cleaning up..." not in dev.lines()
