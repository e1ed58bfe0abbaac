"""Where what the source build makes is kept, and the keys that name it.

The cache lives outside the checkout (default `~/.cache/k8s-from-source`, or
$FROM_SOURCE_CACHE), because CI clones the repository afresh for every run: a cache
inside the clone would be empty each time. Every entry is named by its component, version
and a key over everything that went into it, so a machine that keeps its files rebuilds
nothing, and a changed recipe never reuses a stale build. Go's own module and build caches
stay where `go env GOMODCACHE GOCACHE` puts them (~/go/pkg/mod, ~/.cache/go-build): a
fresh clone's build then compiles only what changed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("FROM_SOURCE_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "k8s-from-source"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def key(parts: Iterable[str], paths: Iterable[tuple[str, Path]] = ()) -> str:
    """12 hex digits over the strings and the files' names and contents."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    for name, path in paths:
        digest.update(f"{name}\0{file_digest(path)}\0".encode())
    return digest.hexdigest()[:12]
