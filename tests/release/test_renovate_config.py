"""The Renovate configuration (.github/renovate.json) against Renovate's own JSON schema,
plus what the schema cannot say: no unknown keys, every lock and pin covered, few groups.

The schema is the one the `renovate` npm package ships (renovate-schema.json, the file
docs.renovatebot.com serves), fetched with npm at a pinned version and checked against
the registry's sha512 integrity. Renovate's full validator does not install here (native
modules download from GitHub), so the schema is the check the issue allows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tools.prereq import find_tool, missing

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".github" / "renovate.json"
RENOVATE = "renovate@44.121.2"
# `npm view renovate@44.121.2 dist.integrity`
RENOVATE_SHA512 = (
    "gNsY+POw2UN3B4e8x0B5UK3onH1qF7wMirKGaUnJcSx3+xEWH4n35RS4rvVEtTIIV/BoZoFbsIo7njTb9Mydxg=="
)
CACHE = ROOT / ".tools" / "renovate"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    cached = CACHE / f"{RENOVATE.replace('@', '-')}-schema.json"
    if not cached.is_file():
        npm = find_tool("npm")
        if npm is None:
            missing("`npm` not found (install it with: apt-get install npm)")
        CACHE.mkdir(parents=True, exist_ok=True)
        packed = subprocess.run(
            [str(npm), "pack", "--silent", RENOVATE], cwd=CACHE,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert packed.returncode == 0, f"npm pack {RENOVATE} failed: {packed.stderr}"
        tarball = CACHE / packed.stdout.strip().splitlines()[-1]
        digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        try:
            assert digest == RENOVATE_SHA512, f"{tarball.name}: sha512 mismatch"
            with tarfile.open(tarball) as archive:
                member = archive.extractfile("package/renovate-schema.json")
                assert member is not None
                cached.write_bytes(member.read())
        finally:
            tarball.unlink()
    loaded: dict[str, Any] = json.loads(cached.read_text())
    return loaded


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(CONFIG.read_text())
    return loaded


def test_config_is_valid_against_renovates_schema(
    schema: dict[str, Any], config: dict[str, Any]
) -> None:
    jsonschema.validate(config, schema)


def test_the_schema_really_rejects_bad_config(schema: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"customManagers": [{"customType": "nonsense"}]}, schema)


def test_no_unknown_keys_anywhere(schema: dict[str, Any], config: dict[str, Any]) -> None:
    # The schema allows additional properties; a typo would be silently ignored by it.
    known = set(schema["properties"]) | set(schema["definitions"]) | {"$schema"}
    objects = [config, config["lockFileMaintenance"], config["pip-compile"], config["pep621"]]
    objects += config["packageRules"] + config["customManagers"]
    unknown = {key for obj in objects for key in obj if key not in known}
    assert unknown == set()


def manager_patterns(config: dict[str, Any], manager: str) -> list[re.Pattern[str]]:
    return [re.compile(p.strip("/")) for p in config[manager]["managerFilePatterns"]]


def test_every_lock_file_is_covered(config: dict[str, Any]) -> None:
    locks = ["requirements.lock", "requirements-dev.lock", "tools/checkov.lock", "tools/sbom.lock"]
    patterns = manager_patterns(config, "pip-compile")
    assert [lock for lock in locks if not any(p.search(lock) for p in patterns)] == []
    for lock in locks:  # the pip-compile manager regenerates from the command in the header
        assert "uv pip compile" in (ROOT / lock).read_text().splitlines()[1], lock
    assert config["lockFileMaintenance"]["enabled"] is True


def test_every_custom_manager_matches_its_files(config: dict[str, Any]) -> None:
    # The files Renovate sees: the repository's, not .venv, .tools or bin/ (walking those
    # once per pattern took 30 s in the fresh-machine check, whose .venv is in the checkout).
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    matched: dict[str, str] = {}
    for manager in config["customManagers"]:
        files = [
            ROOT / name
            for pattern in manager["managerFilePatterns"]
            for name in tracked
            if name and re.search(pattern.strip("/"), name)
        ]
        assert files, f"{manager['description']}: no file matches"
        # Renovate's regex flavour (re2) reads named groups as (?<name>...); Python's re
        # needs (?P<name>...). The strings are otherwise the same.
        expressions = [re.compile(s.replace("(?<", "(?P<")) for s in manager["matchStrings"]]
        hits = [m for f in files for e in expressions for m in [e.search(f.read_text())] if m]
        assert hits, f"{manager['description']}: the pattern matches nothing in {files}"
        matched[manager["description"]] = hits[0]["currentValue"]
    tools = (ROOT / "local" / "tools.toml").read_text()
    for tool in ("kind", "skaffold", "helm", "kubectl"):
        version = matched[
            f"local/tools.toml: {tool}" + (" (Kubernetes releases)" * (tool == "kubectl"))
        ]
        assert f'[{tool}]\nversion = "{version}"' in tools


def test_updates_are_grouped_and_weekly(config: dict[str, Any]) -> None:
    groups = {rule.get("groupName") for rule in config["packageRules"]} - {None}
    assert len(groups) <= 6
    assert config["schedule"] == ["before 6am on monday"]
    assert config["prConcurrentLimit"] <= 10
    assert "helpers:pinGitHubActionDigests" in config["extends"]
    assert "docker:pinDigests" in config["extends"]
