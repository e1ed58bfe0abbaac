"""`make promote`: write a release's image repository and digest into values/<env>.yaml.

The file is edited as text, not re-dumped: its comments and layout stay, and the diff a
reviewer sees is the one or two lines that change what runs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from tools.release_registry import ReleaseError

PROMOTABLE = ("staging", "prod")
IMAGE_BY_DIGEST = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9._/:-]*)@(?P<digest>sha256:[0-9a-f]{64})$"
)
# What a Kubernetes label value may hold (the chart puts image.version in one).
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_TOP_LEVEL_IMAGE = re.compile(r"^image:[ \t]*(?:#.*)?$")


def load_release(name: str) -> dict[str, str]:
    """The release record `make release` wrote, checked for what promotion needs."""
    if not name:
        raise ReleaseError(
            "RELEASE is required: `make promote ENV=staging RELEASE=dist/release-<VERSION>.json`"
        )
    path = Path(name)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReleaseError(
            f"RELEASE={path} does not exist: `make release` writes dist/release-<VERSION>.json"
        ) from None
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"RELEASE={path} is not a release record (JSON): {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("image"), str):
        raise ReleaseError(f'RELEASE={path} has no "image": is it a dist/release-<VERSION>.json?')
    if not isinstance(record.get("version"), str) or not _LABEL_VALUE.match(record["version"]):
        raise ReleaseError(f'RELEASE={path}: "version" must be the released version, e.g. "1.2.0"')
    if IMAGE_BY_DIGEST.match(record["image"]) is None:
        raise ReleaseError(
            f"RELEASE={path}: image {record['image']!r} is not <repository>@sha256:<64 hex>"
        )
    return record


def _quoted(version: str) -> str:
    """Quoted: an unquoted 1.10 would be read back as the number 1.1."""
    return f'"{version}"'


def _scalar_line(indent: str, key: str, value: str, old_line: str | None) -> str:
    """`key: value`, keeping a trailing comment the old line had."""
    comment = ""
    if old_line is not None:
        found = re.search(r"\s+#.*$", old_line.split(":", 1)[1])
        comment = found.group(0) if found else ""
    return f"{indent}{key}: {value}{comment}"


def set_image(text: str, *, repository: str, digest: str, version: str = "") -> str:
    """`text` (a values file) with image.repository, image.digest and (when given)
    image.version set, all else kept."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _TOP_LEVEL_IMAGE.match(line)), None)
    if start is None:
        if re.search(r"^image:", text, re.MULTILINE):
            raise ReleaseError("the top-level `image:` key must be a block mapping to promote into")
        tail = "" if text.endswith("\n") or not text else "\n"
        block = f"\nimage:\n  repository: {repository}\n  digest: {digest}\n"
        return text + tail + block + (f"  version: {_quoted(version)}\n" if version else "")
    # The block: every following line that is blank, a comment, or indented.
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t#"):
        end += 1
    content = [i for i in range(start + 1, end) if lines[i].strip() and lines[i].lstrip()[0] != "#"]
    indent = lines[content[0]][: -len(lines[content[0]].lstrip())] if content else "  "
    last_content = content[-1] if content else start
    inserted: list[str] = []
    wanted = [("repository", repository), ("digest", digest)]
    wanted += [("version", _quoted(version))] if version else []
    for key, value in wanted:
        pattern = re.compile(rf"^{re.escape(indent)}{key}:(?:\s|$)")
        at = next((i for i in content if pattern.match(lines[i])), None)
        if at is None:
            inserted.append(_scalar_line(indent, key, value, None))
        else:
            lines[at] = _scalar_line(indent, key, value, lines[at])
    lines[last_content + 1 : last_content + 1] = inserted
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def promote(*, env: str, release: str, values_dir: Path) -> Path:
    """Write the release's image into values/<env>.yaml; returns the file written."""
    if not env:
        raise ReleaseError(
            "ENV is required: `make promote ENV=staging RELEASE=dist/release-<VERSION>.json` "
            "(or ENV=prod)"
        )
    if env not in PROMOTABLE:
        raise ReleaseError(
            f"ENV={env!r} cannot be promoted to: use ENV=staging or ENV=prod "
            "(dev builds its own image)"
        )
    record = load_release(release)
    match = IMAGE_BY_DIGEST.match(record["image"])
    assert match is not None
    target = values_dir / f"{env}.yaml"
    if not target.is_file():
        raise ReleaseError(f"{target} is missing: restore it with `git checkout -- {target}`")
    text = target.read_text()
    # image.version labels the pods (app.kubernetes.io/version): a digest alone is no version.
    updated = set_image(
        text, repository=match["repository"], digest=match["digest"], version=record["version"]
    )
    # Written next to the target and renamed over it: never a half-written values file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(updated)
    os.chmod(tmp, target.stat().st_mode & 0o777)
    os.replace(tmp, target)
    return target
