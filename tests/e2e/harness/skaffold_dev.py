"""A `skaffold dev` process whose output the test can wait on and read afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.e2e.harness.waiting import NotYet, wait_until

WATCHING = re.compile(r"Watching for changes")
SYNCING = re.compile(r"Syncing \d+ files? for ")
# What skaffold prints when it builds an image (first start, or a change sync cannot take).
REBUILDING = re.compile(r"^(Generating tags\.\.\.|Checking cache\.\.\.|Building \[|Starting build)")


def sync_lines(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if SYNCING.search(line)]


def rebuild_lines(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if REBUILDING.search(line.strip())]


class SkaffoldExitError(AssertionError):
    pass


class SkaffoldDev:
    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self._proc: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> SkaffoldDev:
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Its own process group, so stop() can end helm/kubectl children it leaves behind.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name="skaffold-output", daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    def line_count(self) -> int:
        with self._lock:
            return len(self._lines)

    def lines(self, since: int = 0) -> list[str]:
        with self._lock:
            return self._lines[since:]

    def output_tail(self, count: int = 60) -> str:
        return "\n".join(self.lines()[-count:])

    def wait_for(self, pattern: re.Pattern[str], *, since: int = 0, timeout: float) -> int:
        """Index of the first line at or after `since` matching `pattern`."""

        def seen() -> int:
            lines = self.lines(since)
            for offset, line in enumerate(lines):
                if pattern.search(line):
                    return since + offset
            if self._proc is not None and self._proc.poll() is not None:
                raise SkaffoldExitError(
                    f"skaffold exited {self._proc.returncode} before printing "
                    f"{pattern.pattern!r}:\n{self.output_tail()}"
                )
            raise NotYet(f"{len(lines)} lines so far, last: {lines[-1] if lines else '(none)'}")

        return wait_until(
            seen,
            what=f"skaffold to print {pattern.pattern!r}",
            timeout=timeout,
            interval=0.2,
            retry_on=(NotYet,),
            diagnose=self.output_tail,
        )

    def stop(self, timeout: float = 180) -> int | None:
        """Ctrl+C, as a user would: skaffold then cleans up (uninstalls) what it deployed."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)  # children skaffold left behind
        if self._reader is not None:
            self._reader.join(timeout=10)
        return proc.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
