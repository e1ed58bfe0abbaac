"""Run an outside command and fail with everything a reader needs to see why."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# Enough of a command's output to explain a failure without flooding the report.
OUTPUT_TAIL_CHARS = 4000


class CommandError(AssertionError):
    """A command exited non-zero (or timed out); the message carries its output."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(
            f"`{shlex.join(self.argv)}` {status}\n"
            f"--- stderr ---\n{tail(stderr)}\n--- stdout ---\n{tail(stdout)}"
        )


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} characters cut ...]\n{text[-limit:]}"


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with captured text output; `env` is added to (not instead of) os.environ."""
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            input=input_text,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(argv, None, _text(exc.stdout), _text(exc.stderr)) from None
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data
