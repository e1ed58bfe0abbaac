"""Audit the locked dependencies against PyPI's vulnerability data (the OSV advisories
PyPI shows for each release). `make audit`; exit 1 if any pinned release is affected.

PyPI's JSON API reports vulnerabilities per release; a release that cannot be looked up
is reported as unchecked, never silently passed.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)
API = "https://pypi.org/pypi"


def pins(lock: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in PIN.findall(lock.read_text())}


def fetch(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 - https only
            data: dict[str, object] = json.load(response)
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def vulnerabilities(name: str, version: str) -> list[dict[str, Any]] | None:
    """Advisories for this release; None when PyPI cannot tell us."""
    release = fetch(f"{API}/{name}/{version}/json")
    if release is None:
        # Some mirrors serve only the project document, whose list is for the latest release.
        project = fetch(f"{API}/{name}/json")
        info = project.get("info") if project else None
        if not isinstance(info, dict) or info.get("version") != version:
            return None
        release = project
    found = release.get("vulnerabilities") if release else None
    return found if isinstance(found, list) else None


def main(locks: list[str]) -> int:
    all_pins: dict[str, str] = {}
    for lock in locks:
        all_pins.update(pins(Path(lock)))
    affected, unchecked = 0, []
    for name, version in sorted(all_pins.items()):
        found = vulnerabilities(name, version)
        if found is None:
            unchecked.append(f"{name}=={version}")
            continue
        for advisory in found:
            affected += 1
            ids = ", ".join([str(advisory.get("id")), *map(str, advisory.get("aliases") or [])])
            fixed = ", ".join(map(str, advisory.get("fixed_in") or [])) or "no fix yet"
            print(f"VULNERABLE {name}=={version}: {ids} (fixed in {fixed})")
    print(f"audited {len(all_pins) - len(unchecked)} of {len(all_pins)} pinned packages: "
          f"{affected} known vulnerabilities")  # fmt: skip
    if unchecked:
        print("could not check (PyPI had no data for these releases): " + ", ".join(unchecked))
    return 1 if affected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["requirements.lock"]))
