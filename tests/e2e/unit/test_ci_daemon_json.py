"""tools/daemon_json.py, which the CI scripts edit Docker's daemon.json with: one setting
set, every other kept, nothing written when nothing changes or the file is not an object.
Run as the scripts run it: the system's python3, before any virtualenv."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "daemon_json.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["python3", str(TOOL), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_sets_a_nested_setting_and_keeps_the_others(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"runc": {"path": "runc"}}, "debug": True}))
    proc = run(str(config), "runtimes.kind-sandbox", '{"path": "/usr/local/bin/x"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(config.read_text()) == {
        "runtimes": {"runc": {"path": "runc"}, "kind-sandbox": {"path": "/usr/local/bin/x"}},
        "debug": True,
    }
    assert "(set)" in proc.stderr


def test_writes_nothing_when_the_setting_is_already_there(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text('{"features": {"containerd-snapshotter": false}}')
    before = config.stat().st_mtime_ns, config.read_text()
    proc = run(str(config), "features.containerd-snapshotter", "false")
    assert proc.returncode == 0, proc.stderr
    assert (config.stat().st_mtime_ns, config.read_text()) == before
    assert "(already)" in proc.stderr


@pytest.mark.parametrize(
    ("content", "args", "says"),
    [
        ("{not json", ("a", "1"), "is not valid JSON"),
        ("[1]", ("a", "1"), "must hold a JSON object"),
        ('{"features": true}', ("features.x", "1"), "features must be a JSON object"),
        ("{}", ("a", "not-json"), "is not JSON"),
    ],
)
def test_refuses_what_it_cannot_edit_and_leaves_the_file(
    tmp_path: Path, content: str, args: tuple[str, str], says: str
) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(content)
    proc = run(str(config), *args)
    assert proc.returncode != 0
    assert says in proc.stderr
    assert config.read_text() == content


def test_without_its_three_arguments_it_says_how_to_call_it() -> None:
    proc = run("only-a-file")
    assert proc.returncode == 2
    assert "usage: python3 tools/daemon_json.py FILE KEY[.KEY...] JSON_VALUE" in proc.stderr
