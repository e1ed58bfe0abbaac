"""Go components built from the module proxy, one `go build` per component, cached.

A component's commands build in one invocation, so they share every compiled package
(kube-apiserver, kubelet, kubeadm... compile client-go once). Static binaries
(CGO_ENABLED=0), `-trimpath`, and `-ldflags=-s -w` (no symbol table or DWARF: smaller
binaries and a faster link). GOFLAGS=-mod=readonly: the committed go.sum must cover every
module, so nothing is resolved behind the pins' back. GOTOOLCHAIN=local: the installed Go
builds, never one downloaded on the side.

A component may carry source patches (local/from-source/go/<name>/patches.toml): exact
text replacements in files of its pinned module, applied to a copy of it that the build
uses through a `replace` in a `-modfile`, so the module cache stays as the proxy served
it. Each says why; a replacement whose text is not found exactly once stops the build
(the pin moved on: drop or redo the patch).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.from_source import cache
from tools.from_source.pins import GoComponent, check_go_module

Log = Callable[[str], None]
DEFAULT_GO = "/usr/local/go/bin/go"
PATCHES = "patches.toml"
PATCHED = "patched"  # under the build's work directory: the module copy and its go.mod


class GoBuildError(Exception):
    """The go command is missing or a build failed; the message has its last lines."""


@dataclass(frozen=True)
class Built:
    component: GoComponent
    directory: Path
    seconds: float  # build time (0 when reused)

    def binary(self, name: str) -> Path:
        path = self.directory / name
        if not path.is_file():
            raise GoBuildError(f"{self.component.name}: {path} was not built")
        return path


def go_binary() -> str:
    configured = os.environ.get("GO", "").strip()
    found = configured or shutil.which("go") or (DEFAULT_GO if Path(DEFAULT_GO).is_file() else None)
    if not found:
        raise GoBuildError(
            "`go` not found (only building Kubernetes from source needs it): install Go 1.26 "
            "with: curl -fsSL https://go.dev/dl/go1.26.8.linux-amd64.tar.gz | sudo tar -C "
            "/usr/local -xz (the build machines have it in /usr/local/go/bin), or set "
            "GO=/path/to/go"
        )
    return found


def go_env(**extra: str) -> dict[str, str]:
    """The environment of every go command here (see the module docstring)."""
    return {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local", **extra}


def module_source(component: GoComponent) -> Path:
    """The directory of the component's pinned module in Go's module cache."""
    result = subprocess.run(
        [go_binary(), "list", "-m", "-f", "{{.Dir}}", component.module],
        cwd=component.module_dir, capture_output=True, text=True, env=go_env(), check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise GoBuildError(f"{component.module}: source not found: {result.stderr.strip()}")
    return Path(result.stdout.strip())


def go_version(go: str) -> str:
    return subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()


def ldflags(component: GoComponent) -> str:
    """`-s -w` plus the component's version variables (local/from-source.toml `ldflags`)."""
    major, minor, *_ = component.bare_version.split(".")
    extra = component.extra.get("ldflags", "").format(
        version=component.version, major=major, minor=minor
    )
    return f"-s -w {extra}".strip()


def apply_patches(patches_file: Path, module_dir: Path) -> dict[str, str]:
    """The patched text of each file the patches change, by path relative to `module_dir`."""
    try:
        patches = tomllib.loads(patches_file.read_text(encoding="utf-8")).get("patch", [])
    except tomllib.TOMLDecodeError as exc:
        raise GoBuildError(f"{patches_file} is not valid TOML ({exc})") from None
    patched: dict[str, str] = {}
    for number, patch in enumerate(patches, start=1):
        where = f"{patches_file}, patch {number}"
        if not all(isinstance(patch.get(k), str) for k in ("file", "why", "find", "replace")):
            raise GoBuildError(f"{where}: needs the strings file, why, find and replace")
        name = patch["file"]
        text = patched.get(name) or (module_dir / name).read_text(encoding="utf-8")
        found = text.count(patch["find"])
        if found != 1:
            raise GoBuildError(
                f"{where}: its `find` text occurs {found} times in {name} of {module_dir}, "
                "not once: redo the patch for the pinned version, or drop it if that "
                "version has the fix"
            )
        patched[name] = text.replace(patch["find"], patch["replace"])
    return patched


def _patched_modfile(component: GoComponent, go: str, env: dict[str, str], work: Path) -> list[str]:
    """For a component with patches.toml: a patched copy of its pinned module under
    `work`, and `-modfile` arguments that build with it (go refuses overlays of files in
    the module cache, which stays as the proxy served it). Nothing without patches."""
    patches_file = component.module_dir / PATCHES
    if not patches_file.is_file():
        return []
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{component.module}@{component.version}"],
        cwd=component.module_dir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if download.returncode != 0:
        raise GoBuildError(f"{component.name}: go mod download failed:\n  {download.stdout}")
    original = Path(json.loads(download.stdout)["Dir"])
    copy = work / PATCHED / "module"
    shutil.copytree(original, copy, copy_function=shutil.copyfile)  # writable files
    for directory in (copy, *(p for p in copy.rglob("*") if p.is_dir())):
        directory.chmod(0o755)  # the module cache's are read-only: let the copy be removed
    for name, text in apply_patches(patches_file, original).items():
        (copy / name).write_text(text, encoding="utf-8")
    modfile = work / PATCHED / "go.mod"
    go_mod = (component.module_dir / "go.mod").read_text(encoding="utf-8")
    modfile.write_text(f"{go_mod}\nreplace {component.module} => {copy}\n", encoding="utf-8")
    shutil.copyfile(component.module_dir / "go.sum", work / PATCHED / "go.sum")
    return [f"-modfile={modfile}"]


def build(component: GoComponent, *, log: Log = print) -> Built:
    """The component's binaries, from the cache when this exact build was made before."""
    check_go_module(component)
    go = go_binary()
    flags = ldflags(component)
    version = go_version(go)
    module_files = [(p.name, p) for p in cache.tree_files(component.module_dir)]
    key = cache.key(
        [component.name, component.version, version, "linux", flags, *component.packages],
        module_files,
    )
    dest = cache.cache_dir() / "go" / f"{component.name}-{component.version}-{key}"
    record = dest / "build.json"
    if record.is_file():
        log(f"{component.name} {component.version}: reusing {dest}")
        return Built(component, dest, 0.0)

    work = dest.with_name(f"{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = go_env(CGO_ENABLED="0")
    patched = _patched_modfile(component, go, env, work)
    argv = [go, "build", "-trimpath", "-ldflags", flags, *patched, "-o", f"{work}/",
            *component.packages]  # fmt: skip
    if shutil.which("nice"):
        argv = ["nice", "-n", "10", *argv]  # shared 2-core machines: yield to interactive work
    log(f"{component.name} {component.version}: go build {' '.join(component.packages)}")
    started, cpu_before, load_before = time.monotonic(), _children_cpu(), os.getloadavg()[0]
    result = subprocess.run(
        argv, cwd=component.module_dir, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    # CPU time says what the build costs on a quiet machine (wall time on a shared one
    # mostly measures the others' load).
    cpu_seconds = _children_cpu() - cpu_before
    shutil.rmtree(work / PATCHED, ignore_errors=True)  # only the binaries are kept
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        tail = "\n  ".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise GoBuildError(f"{component.name}: go build failed after {seconds:.0f}s:\n  {tail}")
    (work / "build.json").write_text(
        json.dumps(
            {
                "module": component.module,
                "version": component.version,
                "go": version,
                "ldflags": flags,
                "packages": list(component.packages),
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu_seconds, 1),
                # The machine's 1-minute load average when the build started and ended:
                # what the wall time above was shared with.
                "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)  # a half-built directory is never taken for a finished one
    log(
        f"{component.name} {component.version}: built in {seconds:.0f}s "
        f"({cpu_seconds:.0f}s of CPU, load {load_before:.0f}) into {dest}"
    )
    return Built(component, dest, seconds)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
