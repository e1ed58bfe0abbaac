"""kubectl against one cluster (a kubeconfig) and, optionally, one namespace."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.e2e.harness import commands


@dataclass(frozen=True)
class Kubectl:
    binary: str
    kubeconfig: Path | None = None
    namespace: str | None = None
    timeout: float = 120.0

    def in_namespace(self, namespace: str) -> Kubectl:
        return replace(self, namespace=namespace)

    def argv(self, *args: str) -> list[str]:
        """The full command line; the kubeconfig goes in a flag so no global env leaks in."""
        argv = [self.binary]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        if self.namespace is not None:
            argv.append(f"--namespace={self.namespace}")
        return [*argv, *args]

    def run(
        self,
        *args: str,
        timeout: float | None = None,
        check: bool = True,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return commands.run(
            self.argv(*args),
            timeout=timeout or self.timeout,
            check=check,
            input_text=input_text,
        )

    def get_json(self, *args: str, timeout: float | None = None) -> Any:
        """`kubectl get ARGS -o json`, parsed."""
        proc = self.run("get", *args, "-o", "json", timeout=timeout)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"`kubectl get {' '.join(args)} -o json` printed something that is not JSON "
                f"({exc}):\n{commands.tail(proc.stdout)}"
            ) from None

    def apply_json(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", input_text=json.dumps(manifest))
