"""The pinned versions of the Kubernetes built from source (local/from-source.toml).

Each Go component has its module in local/from-source/go/<name>/; its go.mod must require
the pinned version, or nothing is built (a version lives in one place: the TOML file).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PINS_FILE = ROOT / "local" / "from-source.toml"
GO_MODULES_DIR = ROOT / "local" / "from-source" / "go"
IMAGES_DIR = ROOT / "local" / "from-source" / "images"
_VERSION = re.compile(r"^v\d+\.\d+\.\d+$")


class PinError(Exception):
    """A pin is missing, malformed or disagrees with a go.mod; the message says which."""


@dataclass(frozen=True)
class GoComponent:
    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    extra: dict[str, str]

    @property
    def module_dir(self) -> Path:
        return GO_MODULES_DIR / self.name

    @property
    def bare_version(self) -> str:
        return self.version.removeprefix("v")


@dataclass(frozen=True)
class Pins:
    go: dict[str, GoComponent]
    debian: dict[str, str]

    def __getitem__(self, name: str) -> GoComponent:
        return self.go[name]


def load(path: Path = PINS_FILE) -> Pins:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinError(f"{path} not found: restore it with `git checkout -- {path}`") from None
    except tomllib.TOMLDecodeError as exc:
        raise PinError(f"{path} is not valid TOML ({exc}); fix the line it names") from None
    go = {}
    for name, table in data.items():
        if name == "debian":
            continue
        go[name] = _component(name, table, path)
    debian = data.get("debian", {})
    if not isinstance(debian, dict) or not all(isinstance(v, str) for v in debian.values()):
        raise PinError(f"{path}: [debian] must map package names to version strings")
    return Pins(go=go, debian=dict(debian))


def _component(name: str, table: object, path: Path) -> GoComponent:
    if not isinstance(table, dict):
        raise PinError(f"{path}: [{name}] must be a table")
    module, version, packages = table.get("module"), table.get("version"), table.get("packages")
    if not isinstance(module, str) or not module:
        raise PinError(f"{path}: [{name}] needs `module`, the Go module path")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise PinError(f"{path}: [{name}] version must read vX.Y.Z (got {version!r})")
    if (
        not isinstance(packages, list)
        or not packages
        or not all(isinstance(p, str) for p in packages)
    ):
        raise PinError(f"{path}: [{name}] packages must list the main packages to build")
    extra = {k: v for k, v in table.items() if k not in {"module", "version", "packages"}}
    if not all(isinstance(v, str) for v in extra.values()):
        raise PinError(f"{path}: [{name}] extra keys must be strings")
    return GoComponent(
        name, module, version, tuple(packages), {k: str(v) for k, v in extra.items()}
    )


def required_version(go_mod: Path, module: str) -> str | None:
    """The version `go_mod` requires `module` at (a `require` line or block entry)."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    match = pattern.search(go_mod.read_text(encoding="utf-8"))
    return match[1] if match else None


def check_go_module(component: GoComponent) -> None:
    """Refuse a component whose go.mod requires another version than the pin."""
    go_mod = component.module_dir / "go.mod"
    if not go_mod.is_file():
        raise PinError(f"{go_mod} not found: restore it with `git checkout -- {go_mod.parent}`")
    required = required_version(go_mod, component.module)
    if required != component.version:
        raise PinError(
            f"{go_mod} requires {component.module} {required or '(nothing)'}, but "
            f"local/from-source.toml pins {component.version}. Change both together: set the "
            f"require line to {component.version} and run `go mod tidy` in {go_mod.parent}"
        )
