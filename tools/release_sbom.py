"""A CycloneDX JSON SBOM of what an image holds: its venv's Python packages (cyclonedx-py)
and the Debian packages of its base (dpkg's status file)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tools.release_registry import ReleaseError

VENV_IN_IMAGE = "/opt/venv"
DPKG_STATUS_IN_IMAGE = "/var/lib/dpkg/status"
TIMEOUT_S = 300


def _run(argv: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, **kwargs
    )
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise ReleaseError(f"{what} failed: {last[0]}")
    return proc


def _image_sys_path(docker: str, image: str) -> list[str]:
    """sys.path as the image's own interpreter sees it (its venv, its Python version)."""
    proc = _run(
        [docker, "run", "--rm", "--network", "none", "--entrypoint",
         f"{VENV_IN_IMAGE}/bin/python", image, "-c",
         "import json, sys; json.dump(sys.path, sys.stdout)"],
        f"reading sys.path from {image}",
    )  # fmt: skip
    path = json.loads(proc.stdout)
    assert isinstance(path, list)
    return [str(p) for p in path]


def _export(docker: str, image: str, into: Path) -> None:
    """Copy the venv and dpkg's status file out of the image, without running it."""
    container = _run([docker, "create", image], f"docker create {image}").stdout.strip()
    try:
        _run([docker, "cp", f"{container}:{VENV_IN_IMAGE}", str(into / "venv")], "docker cp")
        # Images without dpkg (distroless, alpine) simply have no OS packages listed.
        subprocess.run(
            [docker, "cp", f"{container}:{DPKG_STATUS_IN_IMAGE}", str(into / "dpkg-status")],
            capture_output=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    finally:
        subprocess.run([docker, "rm", container], capture_output=True, check=False)


def _interpreter_shim(into: Path, image_path: list[str]) -> Path:
    """cyclonedx-py asks `<python> -c 'print sys.path'` where to look. The image's Python
    may not run here (another version, another libc), so this answers in its place with the
    image's own sys.path, moved onto the exported copy of the venv."""
    exported = [
        str(into / "venv") + p.removeprefix(VENV_IN_IMAGE)
        for p in image_path
        if p == VENV_IN_IMAGE or p.startswith(VENV_IN_IMAGE + "/")
    ]
    answer = into / "sys-path.json"
    answer.write_text(json.dumps(exported))
    shim = into / "python"
    shim.write_text(f"#!/bin/sh\nexec cat '{answer}'\n")
    shim.chmod(0o755)
    return shim


def _dpkg_packages(status: Path) -> list[dict[str, str]]:
    """Installed packages in dpkg's status file (RFC 822 stanzas)."""
    if not status.is_file():
        return []
    packages = []
    for stanza in status.read_text(errors="replace").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages.append(fields)
    return packages


def _os_components(status: Path) -> list[dict[str, Any]]:
    components = []
    for pkg in _dpkg_packages(status):
        name, version, arch = pkg["Package"], pkg.get("Version", ""), pkg.get("Architecture", "")
        purl = f"pkg:deb/debian/{name}@{version}?arch={arch}"
        components.append(
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
        )
    return components


def write_sbom(
    *, docker: str, image: str, version: str, cyclonedx: str, out: Path, created_epoch: str
) -> None:
    """Write the SBOM of `image` (a name@sha256 reference, pulled already) to `out`."""
    with tempfile.TemporaryDirectory(prefix="sbom-") as tmp:
        work = Path(tmp)
        _export(docker, image, work)
        shim = _interpreter_shim(work, _image_sys_path(docker, image))
        raw = work / "bom.json"
        env = {**os.environ, "SOURCE_DATE_EPOCH": created_epoch}
        try:
            _run(
                [cyclonedx, "environment", "--of", "JSON", "--output-reproducible",
                 "-o", str(raw), str(shim)],
                "cyclonedx-py environment", env=env,
            )  # fmt: skip
        except FileNotFoundError:
            raise ReleaseError(
                f"`{cyclonedx}` not found: `make sbom-tool` installs it from tools/sbom.lock"
            ) from None
        bom = json.loads(raw.read_text())
        repository, _, digest = image.partition("@")
        name = repository.rsplit("/", 1)[-1]
        bom["metadata"]["component"] = {
            "type": "container",
            "bom-ref": image,
            "name": name,
            "version": version,
            "purl": f"pkg:oci/{name}@{digest.replace(':', '%3A')}?repository_url={repository}",
        }
        bom["components"] = bom.get("components", []) + _os_components(work / "dpkg-status")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(json.dumps(bom, indent=2) + "\n")
    try:
        validate_sbom(Path(cyclonedx).parent / "python", partial, bom["specVersion"])
    except ReleaseError:
        partial.unlink()
        raise
    partial.replace(out)


# cyclonedx-python-lib (cyclonedx-py's own library, in its venv) checks the final document,
# the components added above included, against the CycloneDX JSON schema.
_VALIDATE = """
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
version = SchemaVersion.from_version(sys.argv[2])
error = JsonStrictValidator(version).validate_str(open(sys.argv[1]).read())
sys.exit(" ".join(str(error).split())[:300] if error else 0)
"""


def validate_sbom(python: Path, sbom: Path, spec_version: str) -> None:
    """Refuse `sbom` unless it is valid CycloneDX `spec_version` (ReleaseError says why)."""
    _run([str(python), "-c", _VALIDATE, str(sbom), spec_version], "CycloneDX schema validation")
