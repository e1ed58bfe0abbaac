"""`make tools`: pinned kind, skaffold, helm and kubectl in the project's bin/, checksums verified.

A tool already in bin/ or on PATH whose version is in the pinned `accept` range is reused;
anything else is downloaded from the tool's official release (local/tools.toml), checked
against its pinned SHA-256 and installed atomically. Nothing is ever installed unverified.
With CI=true (or --exact) only the pinned versions are used, from bin/: a hosted runner's
own helm or kubectl is never what CI tests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VERSIONS = ROOT / "local" / "tools.toml"
DEFAULT_BIN = ROOT / "bin"
PLATFORMS = ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
_MACHINE_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DOWNLOAD_TIMEOUT_S = 60

Version = tuple[int, int, int]
Log = Callable[[str], None]


class ToolError(Exception):
    """What went wrong and the command or setting that fixes it."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    accept_min: Version
    accept_below: Version
    base_url: str
    path: str
    checksum: str
    version_args: tuple[str, ...]
    sha256: dict[str, str]
    member: str | None = None

    def fits(self, version: Version) -> bool:
        return self.accept_min <= version < self.accept_below

    @property
    def accept(self) -> str:
        low, high = (".".join(map(str, v)) for v in (self.accept_min, self.accept_below))
        return f">={low},<{high}"


def parse_version(text: str) -> Version | None:
    """The first x.y.z in a tool's version output (`kind v0.32.0 go1.26 ...` -> (0, 32, 0))."""
    match = _SEMVER.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def host_platform(system: str | None = None, machine: str | None = None) -> str:
    """`linux-amd64` style key of this machine, as release assets name it."""
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    arch = _MACHINE_ARCH.get(machine)
    if system not in {"linux", "darwin"} or arch is None:
        raise ToolError(
            f"no release asset for {system}/{machine}: `make tools` supports "
            f"{', '.join(PLATFORMS)}; install kind, skaffold, helm and kubectl yourself and put "
            "them on PATH (`make doctor` checks their versions)"
        )
    return f"{system}-{arch}"


def load_specs(path: Path = DEFAULT_VERSIONS) -> dict[str, ToolSpec]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ToolError(
            f"{path} not found: restore it from git (`git checkout -- {path}`)"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ToolError(f"{path} is not valid TOML ({exc}); fix the line it names") from exc
    return {name: _spec(name, table, path) for name, table in data.items()}


def _spec(name: str, table: dict[str, object], path: Path) -> ToolSpec:
    def field(key: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise ToolError(f"{path}: [{name}] needs a non-empty string `{key}`")
        return value

    accept = re.fullmatch(r">=\s*([\d.]+)\s*,\s*<\s*([\d.]+)", field("accept"))
    low, high = (parse_version(accept[1]), parse_version(accept[2])) if accept else (None, None)
    if low is None or high is None:
        raise ToolError(f"{path}: [{name}] accept must read '>=X.Y.Z,<X.Y.Z'")
    version = parse_version(field("version"))
    if version is None or not low <= version < high:
        raise ToolError(f"{path}: [{name}] version must be X.Y.Z inside its accept range")
    sha256 = table.get("sha256", {})
    if not isinstance(sha256, dict):
        raise ToolError(f"{path}: [{name}.sha256] must be a table of platform = digest")
    for key, digest in sha256.items():
        if key not in PLATFORMS or not isinstance(digest, str) or not _SHA256.match(digest):
            raise ToolError(
                f"{path}: [{name}.sha256] {key} must be one of {PLATFORMS} = 64 lowercase hex"
            )
    args = table.get("version_args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ToolError(f"{path}: [{name}] version_args must be a list of strings")
    member = table.get("member")
    return ToolSpec(
        name=name,
        version=field("version"),
        accept_min=low,
        accept_below=high,
        base_url=field("base_url").rstrip("/"),
        path=field("path"),
        checksum=field("checksum"),
        version_args=tuple(args),
        sha256=dict(sha256),
        member=member if isinstance(member, str) else None,
    )


def asset_url(
    spec: ToolSpec, plat: str, base_url: str | None = None, *, checksum: bool = False
) -> str:
    """Official URL of the asset for `plat`; `base_url` (a mirror) becomes <base_url>/<tool>."""
    os_name, arch = plat.split("-")
    template = spec.checksum if checksum else spec.path
    rel = template.format(version=spec.version, os=os_name, arch=arch)
    base = f"{base_url.rstrip('/')}/{spec.name}" if base_url else spec.base_url
    return f"{base}/{rel}"


def installed_version(executable: str, spec: ToolSpec) -> Version | None:
    try:
        result = subprocess.run(
            [executable, *spec.version_args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(result.stdout + result.stderr) if result.returncode == 0 else None


def find_fitting(
    spec: ToolSpec, bin_dir: Path, *, exact: bool = False
) -> tuple[str, Version] | None:
    """A bin/ or PATH copy of the tool whose version is in the accept range.

    `exact`: only bin/'s copy, and only if it is the pinned version itself.
    """
    candidates = [str(bin_dir / spec.name)]
    on_path = None if exact else shutil.which(spec.name)
    if on_path:
        candidates.append(on_path)
    pinned = parse_version(spec.version)
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and Path(candidate).is_file():
            version = installed_version(candidate, spec)
            if version is None:
                continue
            if version == pinned if exact else spec.fits(version):
                return candidate, version
    return None


def expected_sha256(spec: ToolSpec, plat: str, base_url: str | None, log: Log) -> str:
    pinned = spec.sha256.get(plat)
    if pinned:
        return pinned
    url = asset_url(spec, plat, base_url, checksum=True)
    text = _fetch(url, spec).decode("utf-8", "replace")
    digest = next((t for t in text.split() if _SHA256.match(t.lower())), None)
    if digest is None:
        raise ToolError(
            f"{url} holds no SHA-256 digest; pin one in local/tools.toml [{spec.name}.sha256]"
        )
    log(f"{spec.name}: no pinned digest for {plat}; using the release's published {url}")
    return digest.lower()


def install(
    spec: ToolSpec, bin_dir: Path, plat: str, base_url: str | None = None, log: Log = print
) -> Path:
    """Download, verify and install one tool as bin_dir/<name>; return its path."""
    url = asset_url(spec, plat, base_url)
    want = expected_sha256(spec, plat, base_url, log)
    log(f"{spec.name}: downloading {spec.version} for {plat} from {url}")
    payload = _fetch(url, spec)
    got = hashlib.sha256(payload).hexdigest()
    if got != want:
        raise ToolError(
            f"{spec.name}: checksum mismatch for {url}: expected {want}, got {got}. Nothing was "
            "installed. A proxy may have altered the download, or the pin in local/tools.toml "
            "is wrong; retry, and compare with the project's release page before changing pins."
        )
    binary = _extract(payload, spec, plat) if spec.member else payload
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / spec.name
    fd, tmp_name = tempfile.mkstemp(dir=bin_dir, prefix=f".{spec.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(binary)
    tmp = Path(tmp_name)
    tmp.chmod(0o755)
    tmp.replace(target)  # atomic: a concurrent `make` never runs half a binary
    log(f"{spec.name}: installed {target} (sha256 {got[:12]}... verified)")
    return target


def _extract(payload: bytes, spec: ToolSpec, plat: str) -> bytes:
    os_name, arch = plat.split("-")
    member = (spec.member or "").format(os=os_name, arch=arch)
    with tempfile.TemporaryFile() as raw:
        raw.write(payload)
        raw.seek(0)
        try:
            with tarfile.open(fileobj=raw, mode="r:gz") as archive:
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise KeyError(member)
                return extracted.read()
        except (KeyError, tarfile.TarError) as exc:
            raise ToolError(f"{spec.name}: {member} not found in the verified archive") from exc


def _fetch(url: str, spec: ToolSpec) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ToolError(f"{spec.name}: refusing to fetch {url}: only http(s) URLs are allowed")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        raise ToolError(
            f"{spec.name}: {url} answered HTTP {exc.code}; check the version in local/tools.toml"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ToolError(
            f"{spec.name}: cannot download {url} ({reason}). Check the network or proxy "
            "(HTTPS_PROXY), or point TOOLS_BASE_URL at a mirror"
        ) from exc


def ensure_tools(
    names: list[str],
    *,
    specs: dict[str, ToolSpec],
    bin_dir: Path = DEFAULT_BIN,
    plat: str | None = None,
    base_url: str | None = None,
    log: Log = print,
    exact: bool = False,
) -> dict[str, str]:
    """Reuse or install each named tool; return name -> path used.

    `exact` (CI): the pinned version in bin_dir, never another copy on PATH.
    """
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ToolError(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(specs)}")
    plat = plat or host_platform()
    cross = plat != host_platform_or_none()
    used: dict[str, str] = {}
    failures: list[str] = []
    for name in names:
        try:
            used[name] = _ensure_one(
                specs[name], bin_dir, plat, base_url, log, cross=cross, exact=exact
            )
        except ToolError as exc:
            failures.append(str(exc))  # keep going: one run reports every problem
    if failures:
        raise ToolError("\n".join(failures))
    return used


def _ensure_one(
    spec: ToolSpec,
    bin_dir: Path,
    plat: str,
    base_url: str | None,
    log: Log,
    *,
    cross: bool,
    exact: bool,
) -> str:
    found = None if cross else find_fitting(spec, bin_dir, exact=exact)
    if found:
        path, version = found
        fits = f"the pinned {spec.version}" if exact else f"fits {spec.accept}"
        log(f"{spec.name}: reusing {path} ({'.'.join(map(str, version))}, {fits})")
        return path
    target = install(spec, bin_dir, plat, base_url, log)
    if not cross:
        reported = installed_version(str(target), spec)
        if reported is None or not spec.fits(reported):
            raise ToolError(
                f"{spec.name}: the installed {target} does not report version {spec.version}"
            )
    return str(target)


def host_platform_or_none() -> str | None:
    try:
        return host_platform()
    except ToolError:
        return None


def print_checksums(specs: dict[str, ToolSpec], names: list[str], base_url: str | None) -> None:
    """Fetch each platform's published digest and print it as TOML, for bumping pins."""
    for name in names:
        spec = specs[name]
        print(f"[{name}.sha256]")
        for plat in PLATFORMS:
            without_pin = replace(spec, sha256={})
            print(f'{plat} = "{expected_sha256(without_pin, plat, base_url, lambda _m: None)}"')
        print()


def refuse_unpinned_from_mirror(specs: dict[str, ToolSpec], names: list[str], plat: str) -> None:
    """A mirror serving both a binary and its checksum file vouches for nothing: from a
    mirror, only tools pinned in local/tools.toml for this platform are installed."""
    unpinned = [name for name in names if name in specs and plat not in specs[name].sha256]
    if unpinned:
        raise ToolError(
            f"TOOLS_BASE_URL is a mirror, and local/tools.toml pins no SHA-256 for "
            f"{', '.join(unpinned)} on {plat}: pin them first "
            f"(`python -m tools.install_tools --checksums {' '.join(unpinned)}` on a trusted "
            "network), or install from the official releases (unset TOOLS_BASE_URL)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.install_tools", description=__doc__)
    parser.add_argument(
        "--checksums",
        action="store_true",
        help="print each platform's published digest as TOML (to bump pins); install nothing",
    )
    parser.add_argument("tools", nargs="*", help="default: every tool in the versions file")
    parser.add_argument("--versions", type=Path, default=DEFAULT_VERSIONS)
    parser.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN)
    parser.add_argument("--platform", choices=PLATFORMS, help="default: this machine")
    parser.add_argument(
        "--exact",
        action="store_true",
        # tools.prereq.in_ci()'s rule, without importing pytest into `make tools`.
        default=os.environ.get("CI", "").lower() in {"1", "true", "yes"},
        help="only the pinned versions, installed in --bin-dir; never reuse a copy on PATH "
        "(default with CI=true)",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("TOOLS_BASE_URL") or None,
        help="mirror serving <base-url>/<tool>/<official path> (env TOOLS_BASE_URL)",
    )
    args = parser.parse_args(argv)
    try:
        specs = load_specs(args.versions)
        names = args.tools or list(specs)
        if args.checksums:
            print_checksums(specs, names, args.base_url)
        else:
            if args.base_url:
                refuse_unpinned_from_mirror(specs, names, args.platform or host_platform())
            if args.exact:
                print(f"exact pinned versions only, in {args.bin_dir} (CI=true or --exact)")
            ensure_tools(
                names,
                specs=specs,
                bin_dir=args.bin_dir,
                plat=args.platform,
                base_url=args.base_url,
                exact=args.exact,
            )
    except ToolError as exc:
        print(f"make tools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
