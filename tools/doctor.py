"""`make doctor`: check every prerequisite of the local Kubernetes loop, and say how to fix each.

Checks: the Docker daemon, kind/skaffold/helm/kubectl versions (local/tools.toml), ports
80/443 on 127.0.0.1, inotify limits (Linux), and the kube context. Exit 1 if any check
fails; warnings alone exit 0.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.install_tools import ToolError, ToolSpec, installed_version, load_specs
from tools.localcluster import (
    CLUSTER_NAME,
    HOST_ADDRESS,
    HOST_PORTS,
    LocalClusterError,
    context_name,
    current_context,
    ports_in_use,
    ports_taken_message,
)
from tools.prereq import find_tool

# kind's known-issues page: below these, a node's kubelet or the Flask reloader's file
# watches fail with "too many open files".
INOTIFY_MINIMUMS = {"max_user_watches": 524288, "max_user_instances": 512}
PROC_INOTIFY = Path("/proc/sys/fs/inotify")


@dataclass(frozen=True)
class Result:
    check: str
    status: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""


def check_docker() -> Result:
    docker = find_tool("docker", env_var="DOCKER")
    if docker is None:
        return Result(
            "docker", "fail", "docker CLI not found", "install Docker Desktop or Docker Engine"
        )
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        result = None
    if result is None or result.returncode != 0 or not result.stdout.strip():
        return Result(
            "docker",
            "fail",
            "the Docker daemon does not answer",
            "start Docker Desktop, or `sudo systemctl start docker` (Linux)",
        )
    return Result("docker", "ok", f"daemon answers (engine {result.stdout.strip()})")


def _locate(name: str) -> str | None:
    return find_tool(name, env_var=name.upper())


def check_tool(spec: ToolSpec, locate: Callable[[str], str | None] = _locate) -> Result:
    path = locate(spec.name)
    if path is None:
        return Result(spec.name, "fail", "not found", "`make tools`")
    version = installed_version(path, spec)
    if version is None:
        return Result(spec.name, "fail", f"{path} does not report a version", "`make tools`")
    shown = ".".join(map(str, version))
    if not spec.fits(version):
        return Result(
            spec.name,
            "fail",
            f"{path} is {shown}, needs {spec.accept}",
            f"`make tools` (installs {spec.version} into bin/, which the Makefile puts first)",
        )
    return Result(spec.name, "ok", f"{shown} ({path})")


def check_ports(
    cluster_running: bool, ports: tuple[int, ...] = HOST_PORTS, address: str = HOST_ADDRESS
) -> Result:
    busy = ports_in_use(ports, address)
    listed = "/".join(map(str, ports))
    if not busy:
        return Result("ports", "ok", f"{address}:{listed} free for the cluster's ingress")
    if cluster_running:
        return Result(
            "ports", "ok", f"{address}:{listed} held by the running {CLUSTER_NAME} cluster"
        )
    return Result("ports", "fail", f"{address}:{busy[0]} taken", ports_taken_message(busy, address))


def check_inotify(proc_dir: Path = PROC_INOTIFY) -> Result:
    if not proc_dir.is_dir():
        return Result("inotify", "ok", "not Linux: no inotify limits to check")
    low = []
    for name, minimum in INOTIFY_MINIMUMS.items():
        try:
            value = int((proc_dir / name).read_text().strip())
        except (OSError, ValueError):
            continue
        if value < minimum:
            low.append((name, value, minimum))
    if not low:
        return Result("inotify", "ok", "limits high enough for kind and file sync")
    settings = " ".join(f"fs.inotify.{name}={minimum}" for name, _, minimum in low)
    found = ", ".join(f"{name}={value}" for name, value, _ in low)
    return Result(
        "inotify",
        "warn",
        f"{found}: too low (pods may fail with 'too many open files')",
        f"`sudo sysctl {settings}` (persist it in /etc/sysctl.d/99-kind.conf)",
    )


def check_context() -> Result:
    try:
        context = current_context()
    except LocalClusterError:
        return Result("context", "warn", "no kube context yet", "`make cluster`")
    if context == context_name():
        return Result("context", "ok", f"{context} (the local cluster)")
    if context.startswith("kind-"):
        return Result(
            "context",
            "warn",
            f"{context} is another kind cluster",
            f"`kubectl config use-context {context_name()}` or `make cluster`",
        )
    return Result(
        "context",
        "warn",
        f"{context} is not a kind cluster: `make dev` will refuse it",
        f"`make cluster` or `kubectl config use-context {context_name()}`",
    )


def cluster_running() -> bool:
    docker = find_tool("docker", env_var="DOCKER")
    if docker is None:
        return False
    result = subprocess.run(
        [
            docker,
            "ps",
            "--filter",
            f"name=^{CLUSTER_NAME}-control-plane$",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def run_checks() -> list[Result]:
    results = [check_docker()]
    try:
        specs = load_specs()
    except ToolError as exc:
        results.append(Result("tools", "fail", str(exc), "`git checkout -- local/tools.toml`"))
    else:
        results += [check_tool(spec) for spec in specs.values()]
    results += [check_ports(cluster_running()), check_inotify(), check_context()]
    return results


def report(results: list[Result]) -> int:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    for result in results:
        print(f"[{marks[result.status]}] {result.check:<9} {result.detail}")
        if result.fix:
            print(f"           fix: {result.fix}")
    failed = [r.check for r in results if r.status == "fail"]
    if failed:
        print(
            f"\n{len(failed)} problem(s): {', '.join(failed)}. "
            "Fix them and run `make doctor` again."
        )
        return 1
    print("\nall prerequisites met: `make cluster`, then `make dev`")
    return 0


def main() -> int:
    return report(run_checks())


if __name__ == "__main__":
    sys.exit(main())
