"""`make doctor`'s checks against real sockets, files and stand-in tools."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from tools.doctor import Result, check_inotify, check_ports, check_tool, report
from tools.install_tools import load_specs


def test_busy_port_fails_with_the_fix_unless_our_cluster_holds_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        failed = check_ports(cluster_running=False, ports=(port,))
        held = check_ports(cluster_running=True, ports=(port,))
    assert failed.status == "fail"
    assert f"lsof -nP -iTCP:{port}" in failed.fix
    assert held.status == "ok"
    assert check_ports(cluster_running=False, ports=(port,)).status == "ok"


def test_low_inotify_limits_warn_with_the_sysctl_that_fixes_them(tmp_path: Path) -> None:
    (tmp_path / "max_user_watches").write_text("8192\n")
    (tmp_path / "max_user_instances").write_text("1024\n")
    result = check_inotify(tmp_path)
    assert result.status == "warn"
    assert result.fix.startswith("`sudo sysctl fs.inotify.max_user_watches=524288`")
    (tmp_path / "max_user_watches").write_text("1048576\n")
    assert check_inotify(tmp_path).status == "ok"


def tool_script(tmp_path: Path, output: str) -> str:
    path = tmp_path / "tool"
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("output", "status"),
    [
        ("v2.23.0", "ok"),
        ("v2.19.0", "ok"),
        ("v2.18.3", "fail"),  # too old to drive Helm 4
        ("v3.0.0", "fail"),
        ("no version here", "fail"),
    ],
)
def test_tool_versions_are_judged_by_the_pinned_range(
    tmp_path: Path, output: str, status: str
) -> None:
    spec = load_specs()["skaffold"]
    result = check_tool(spec, locate=lambda _: tool_script(tmp_path, output))
    assert result.status == status
    if status == "fail":
        assert result.fix.startswith("`make tools`")


def test_missing_tool_points_at_make_tools() -> None:
    spec = replace(load_specs()["kind"], name="kind")
    result = check_tool(spec, locate=lambda _: None)
    assert (result.status, result.fix) == ("fail", "`make tools`")


def test_report_fails_only_on_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert report([Result("a", "ok", "fine"), Result("b", "warn", "meh", "do x")]) == 0
    assert report([Result("c", "fail", "broken", "do y")]) == 1
    out = capsys.readouterr().out
    assert "fix: do y" in out
    assert "1 problem(s): c" in out
