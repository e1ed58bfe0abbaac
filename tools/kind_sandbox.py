"""The environment `kind create cluster` runs in: on a machine that withholds capabilities,
kind's `--privileged` node containers run on the Docker runtime `kind-sandbox`.

Our build machines withhold CAP_SYS_RESOURCE from every process (pid 1's bounding set lacks
it). `docker run --privileged` asks runc for every capability the kernel knows, so kind's
node container fails with "unable to apply caps: operation not permitted".
scripts/ci/docker-kind-runtime.sh registers `kind-sandbox` (runc less what is withheld);
this puts local/from-source/sandbox/bin first on PATH for kind, whose `docker` there adds
`--runtime=kind-sandbox` to `docker run`. Everywhere else (laptops, hosted CI) kind runs as
it is.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIM_DIR = ROOT / "local" / "from-source" / "sandbox" / "bin"
RUNTIME = "kind-sandbox"
REGISTER = "sudo bash scripts/ci/docker-kind-runtime.sh"


class KindSandboxError(Exception):
    """kind cannot start a node here; the message says why and the command that fixes it."""


def withheld_capabilities(
    status: Path = Path("/proc/1/status"), last_cap: Path = Path("/proc/sys/kernel/cap_last_cap")
) -> list[int]:
    """Capabilities the kernel knows that pid 1's bounding set lacks (none on most machines)."""
    try:
        last = int(last_cap.read_text())
        line = next(x for x in status.read_text().splitlines() if x.startswith("CapBnd:"))
    except (OSError, ValueError, StopIteration):
        return []  # not Linux, or /proc unreadable: nothing to work around
    bounding = int(line.split()[1], 16)
    return [bit for bit in range(last + 1) if not bounding >> bit & 1]


def docker_runtimes(docker: str) -> set[str]:
    result = subprocess.run(
        [docker, "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return set()
    try:
        return set(json.loads(result.stdout or "{}"))
    except json.JSONDecodeError:
        return set()


def kind_environment(
    docker: str,
    env: Mapping[str, str] | None = None,
    *,
    withheld: list[int] | None = None,
) -> dict[str, str]:
    """The environment for `kind create cluster` on this machine."""
    env = dict(os.environ if env is None else env)
    withheld = withheld_capabilities() if withheld is None else withheld
    if not withheld:
        return env
    if RUNTIME not in docker_runtimes(docker):
        raise KindSandboxError(
            f"this machine withholds capabilities {withheld} from every process, so kind's "
            '`docker run --privileged` node fails in runc ("unable to apply caps: operation '
            f'not permitted"). Register the Docker runtime {RUNTIME} once: `{REGISTER}`'
        )
    env["PATH"] = os.pathsep.join([str(SHIM_DIR), env.get("PATH", "")])
    env["KIND_SANDBOX_REAL_DOCKER"] = docker
    env["KIND_SANDBOX_RUNTIME"] = RUNTIME
    return env
