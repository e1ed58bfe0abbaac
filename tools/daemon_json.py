"""Set one setting in Docker's daemon.json, keeping every other one.

    python3 tools/daemon_json.py FILE KEY[.KEY...] JSON_VALUE

The CI scripts that change the engine's configuration (scripts/ci/docker-classic-image-
store.sh, scripts/ci/docker-kind-runtime.sh) call this before the project's virtualenv
exists, so it uses the standard library only. A missing file is created; the file is
written only when the value changes (it says so on stderr); a file that is not a JSON
object is an error naming it, and nothing is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class DaemonJsonError(Exception):
    """The file cannot be edited as asked; the message says why."""


def set_setting(path: Path, keys: list[str], value: Any) -> bool:
    """`keys` (nested objects, made when missing) set to `value`; whether the file changed."""
    text = path.read_text() if path.exists() else ""
    try:
        config = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise DaemonJsonError(f"{path} is not valid JSON ({exc}); fix it first") from None
    if not isinstance(config, dict):
        raise DaemonJsonError(f"{path} must hold a JSON object")
    parent = config
    for key in keys[:-1]:
        parent = parent.setdefault(key, {})
        if not isinstance(parent, dict):
            raise DaemonJsonError(f"{path}: {key} must be a JSON object to set {'.'.join(keys)}")
    if keys[-1] in parent and parent[keys[-1]] == value:
        return False
    parent[keys[-1]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: python3 tools/daemon_json.py FILE KEY[.KEY...] JSON_VALUE\n{__doc__}",
              file=sys.stderr)  # fmt: skip
        return 2
    file, setting, raw = argv
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        print(f"daemon_json.py: the value {raw!r} is not JSON ({exc})", file=sys.stderr)
        return 2
    try:
        changed = set_setting(Path(file), setting.split("."), value)
    except DaemonJsonError as exc:
        print(f"daemon_json.py: {exc}", file=sys.stderr)
        return 1
    state = "set" if changed else "already"
    print(f"daemon_json.py: {file}: {setting} = {json.dumps(value)} ({state})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
