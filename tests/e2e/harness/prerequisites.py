"""Which cluster the suite runs against, and what is missing for it to run at all.

Everything here returns data (a choice, a list of problems); the pytest fixtures decide
whether a problem skips the suite or fails it (E2E_REQUIRED=1, as hosted CI sets).
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from tools.prereq import find_tool

DEFAULT_CLUSTER_NAME = "app-e2e"
# What kind, the cluster and the image build pull from: the node image and the Python
# base image (Docker Hub), ingress-nginx's manifest (GitHub) and its images (registry.k8s.io).
INTERNET_PROBE_URL = "https://registry-1.docker.io/v2/"
# kind's own rule for cluster names (they become container and network names).
_KIND_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,48}[a-z0-9])?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

TOOL_HINT = "run `make tools` (installs pinned versions into bin/)"
TOOL_ENV = {
    "docker": "DOCKER",
    "kind": "KIND",
    "kubectl": "KUBECTL",
    "helm": "HELM",
    "skaffold": "SKAFFOLD",
}


class SettingError(ValueError):
    """An E2E_* variable holds something unusable; the message names it and the fix."""


@dataclass(frozen=True)
class ClusterChoice:
    name: str  # the kind cluster's name: images are loaded with `kind load --name`
    existing_kubeconfig: Path | None  # None: the suite creates the cluster (or reuses its own)
    keep: bool  # leave a cluster the suite created running afterwards
    required: bool  # a missing prerequisite fails instead of skipping

    @property
    def create(self) -> bool:
        return self.existing_kubeconfig is None


def env_flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingError(f"{name}={env[name]!r} is not a yes/no value; use 1 or 0")


def choose_cluster(env: Mapping[str, str], kubeconfig_option: str | None = None) -> ClusterChoice:
    """Read the E2E_* settings (and pytest-kind's --kubeconfig option) into a ClusterChoice.

    E2E_KUBECONFIG (or --kubeconfig, or KUBECONFIG with E2E_USE_KUBECONFIG=1) selects an
    existing kind cluster: its current context must be `kind-<name>`. Otherwise the suite
    creates E2E_CLUSTER_NAME (default app-e2e) from local/kind-cluster.yaml.
    """
    keep = env_flag(env, "E2E_KEEP_CLUSTER")
    required = env_flag(env, "E2E_REQUIRED")
    use_kubeconfig = env_flag(env, "E2E_USE_KUBECONFIG")
    source, raw_path = None, None
    if env.get("E2E_KUBECONFIG"):
        source, raw_path = "E2E_KUBECONFIG", env["E2E_KUBECONFIG"]
    elif kubeconfig_option:
        source, raw_path = "--kubeconfig", kubeconfig_option
    elif use_kubeconfig:
        if not env.get("KUBECONFIG"):
            raise SettingError(
                "E2E_USE_KUBECONFIG=1 but KUBECONFIG is not set; set KUBECONFIG to the "
                "kind cluster's kubeconfig, or use E2E_KUBECONFIG=<path>"
            )
        source, raw_path = "KUBECONFIG", env["KUBECONFIG"]

    if raw_path is None:
        name = env.get("E2E_CLUSTER_NAME", "").strip() or DEFAULT_CLUSTER_NAME
        _check_kind_name(name, "E2E_CLUSTER_NAME")
        return ClusterChoice(name=name, existing_kubeconfig=None, keep=keep, required=required)

    if ":" in raw_path or ";" in raw_path:
        raise SettingError(
            f"{source}={raw_path!r} lists several files; give the one kubeconfig of the kind "
            "cluster to test"
        )
    path = Path(raw_path).expanduser()
    if not path.is_file():
        raise SettingError(f"{source}={raw_path!r}: no such file; give a kubeconfig path")
    context = current_context(path)
    if not context.startswith("kind-"):
        raise SettingError(
            f"{source}={raw_path!r}: current context {context!r} is not a kind cluster "
            "(kind-<name>). The suite loads its images with `kind load`, so it needs kind; "
            "switch context with `kubectl config use-context kind-<name>`, or unset "
            f"{source} to let the suite create its own cluster"
        )
    name = context.removeprefix("kind-")
    _check_kind_name(name, f"{source} current context")
    return ClusterChoice(name=name, existing_kubeconfig=path, keep=True, required=required)


def current_context(kubeconfig: Path) -> str:
    try:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SettingError(f"{kubeconfig} is not valid YAML: {exc}") from None
    context = config.get("current-context") if isinstance(config, dict) else None
    if not context:
        raise SettingError(
            f"{kubeconfig} has no current-context; run `kubectl --kubeconfig {kubeconfig} "
            "config use-context kind-<name>`"
        )
    return str(context)


def _check_kind_name(name: str, source: str) -> None:
    if not _KIND_NAME.match(name):
        raise SettingError(
            f"{source}: {name!r} is not a valid kind cluster name (lower-case letters, digits, "
            "'.' and '-', at most 50 characters)"
        )


# -- what is missing ----------------------------------------------------------------------


def find_tools(names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: find_tool(name, TOOL_ENV.get(name)) for name in names}


def missing_tool_problems(found: Mapping[str, str | None]) -> list[str]:
    return [
        f"`{name}` not found: {TOOL_HINT}, or set ${TOOL_ENV.get(name, name.upper())} to its path"
        for name, path in found.items()
        if path is None
    ]


def docker_problem(docker: str, *, timeout: float = 20.0) -> str | None:
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the Docker engine does not answer (`{docker} info`: {exc}); start Docker"
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        return f"the Docker engine does not answer (`{docker} info`: {first}); start Docker"
    return None


def internet_problem(
    url: str = INTERNET_PROBE_URL,
    *,
    timeout: float = 5.0,
    get: Callable[..., requests.Response] = requests.get,
) -> str | None:
    """None when `url` answers at all (any status: the registry replies 401 to strangers)."""
    try:
        get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        return (
            f"no internet: {url} is unreachable ({reason}); kind pulls its node image and the "
            "cluster pulls ingress-nginx and PostgreSQL images from public registries"
        )
    return None


def ports_in_use(ports: tuple[int, ...], *, host: str = "127.0.0.1") -> list[int]:
    """Ports on `host` that something already accepts connections on."""
    taken = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                taken.append(port)
    return taken


def ports_problem(taken: list[int], cluster_name: str) -> str | None:
    if not taken:
        return None
    listed = ", ".join(f"127.0.0.1:{port}" for port in taken)
    return (
        f"{listed} already in use, and a new kind cluster {cluster_name!r} needs them for "
        "its ingress; if it is the dev cluster (`make cluster`), run the suite against it "
        "with E2E_KUBECONFIG=<its kubeconfig>, or delete it first"
    )


def cluster_problem(kubectl: str, kubeconfig: Path, *, timeout: float = 20.0) -> str | None:
    try:
        proc = subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the cluster in {kubeconfig} does not answer ({exc})"
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        return f"the cluster in {kubeconfig} does not answer: {first}"
    return None


def skip_reason(problems: list[str]) -> str:
    return "live e2e suite needs a kind cluster: " + "; ".join(problems)
