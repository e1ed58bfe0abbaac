"""helm against one cluster and namespace, with the flags the suite relies on spelled once."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness import commands


@dataclass(frozen=True)
class Helm:
    binary: str
    namespace: str
    kubeconfig: Path | None = None

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary, *args, f"--namespace={self.namespace}"]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        return argv

    def run(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return commands.run(self.argv(*args), timeout=timeout, check=check)

    def upgrade_install(
        self,
        release: str,
        chart: Path,
        *,
        values_files: Sequence[Path],
        set_string: Mapping[str, str],
        set_values: Mapping[str, str | int] | None = None,
        wait_timeout_s: int = 600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """`helm upgrade --install --wait --wait-for-jobs`: returns once the Job and pods are done.

        --wait-for-jobs is what makes a failed migration Job fail the release (the chart's
        README, "How a failed migration fails the release"); the same flags work on Helm 3.17
        and Helm 4.
        """
        args = [
            "upgrade",
            "--install",
            release,
            str(chart),
            *install_value_args(values_files, set_string, set_values or {}),
            "--wait",
            "--wait-for-jobs",
            f"--timeout={wait_timeout_s}s",
        ]
        # Helm's own timeout plus time to print the error: ours never fires first.
        return self.run(*args, timeout=wait_timeout_s + 120, check=check)

    def template(
        self,
        release: str,
        chart: Path,
        *,
        values_files: Sequence[Path],
        set_string: Mapping[str, str],
        set_values: Mapping[str, str | int] | None = None,
    ) -> str:
        """The same values as upgrade_install, rendered offline (what the unit tests check)."""
        args = [
            "template",
            release,
            str(chart),
            *install_value_args(values_files, set_string, set_values or {}),
        ]
        return commands.run(
            [self.binary, *args, f"--namespace={self.namespace}"], timeout=120
        ).stdout

    def test(self, release: str, *, timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
        return self.run(
            "test", release, "--logs", f"--timeout={timeout_s}s", timeout=timeout_s + 60
        )

    def status(self, release: str) -> dict[str, Any]:
        proc = self.run("status", release, "--output=json", timeout=60)
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def uninstall(self, release: str) -> None:
        self.run("uninstall", release, "--wait", "--timeout=300s", timeout=360, check=False)


def install_value_args(
    values_files: Sequence[Path],
    set_string: Mapping[str, str],
    set_values: Mapping[str, str | int],
) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["--values", str(path)]
    # --set-string: an image tag such as 1e10 or 0123 must stay a string, never a number.
    for key, value in set_string.items():
        args += ["--set-string", f"{key}={value}"]
    for key, number_or_text in set_values.items():
        args += ["--set", f"{key}={number_or_text}"]
    return args
