"""Find outside tools (helm, docker, kind...) and decide what a test does without one.

A test that needs a tool calls `require_tool(...)`: it gets the tool's path, or the test
is skipped with a reason naming the command that provides it. With `CI=true` a missing
tool that CI can install is a failure instead, so CI never silently skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT_BIN = ROOT / "bin"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def find_tool(name: str, env_var: str | None = None) -> str | None:
    """Path of `name`: $ENV_VAR if set, else the project's bin/, else PATH."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    local = PROJECT_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def missing(reason: str, *, ci_can_provide: bool = True) -> None:
    """Skip the test with `reason`, or fail it when CI should have provided the tool."""
    if ci_can_provide and in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(
    name: str, *, provided_by: str, env_var: str | None = None, ci_can_provide: bool = True
) -> str:
    path = find_tool(name, env_var)
    if path is None:
        missing(
            f"`{name}` not found (install it with: {provided_by})", ci_can_provide=ci_can_provide
        )
        raise AssertionError("unreachable")  # pytest.skip/fail raise
    return path
