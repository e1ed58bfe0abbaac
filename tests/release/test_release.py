"""`make release` and `make promote` against a real registry: what is pushed can be pulled
back by digest and run, the chart pulled back renders that digest in every container, the
SBOM lists what the lock installs, and a version can never be overwritten.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.chart.chartlib import Render, containers, pod_specs
from tests.image.imagelib import container, run_once
from tests.release.conftest import (
    SOURCE_URL,
    Released,
    ReleaseTools,
    clean_checkout,
    release_env,
)
from tools.localpg import free_port
from tools.release_registry import ReleaseError
from tools.release_sbom import validate_sbom

pytestmark = [pytest.mark.docker, pytest.mark.helm, pytest.mark.slow]

DIGEST_REF = re.compile(r"^(?P<repository>.+)@(?P<digest>sha256:[0-9a-f]{64})$")
LOCK_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


def skopeo_inspect(tools: ReleaseTools, ref: str, *raw: str) -> Any:
    out = subprocess.run(
        [tools.skopeo, "inspect", "--tls-verify=false", *raw, f"docker://{ref}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]


def last_error_lines(output: str) -> list[str]:
    """The lines the release tool itself wrote about a refusal (make adds its own)."""
    return [line for line in output.splitlines() if line.startswith(("release: ", "promote: "))]


def test_record_names_the_image_by_its_registry_digest(
    released: Released, release_tools: ReleaseTools
) -> None:
    record = released.record
    assert record["version"] == "1.0.0"
    assert record["commit"] == released.checkout.commit
    assert record["chart"] == f"oci://{released.registry}/charts/app"
    match = DIGEST_REF.match(record["image"])
    assert match and match["repository"] == f"{released.registry}/service"
    remote = skopeo_inspect(release_tools, f"{released.registry}/service:1.0.0")
    assert remote["Digest"] == match["digest"]
    assert (released.checkout.path / record["sbom"]).is_file()


def test_image_carries_the_oci_labels(released: Released, release_tools: ReleaseTools) -> None:
    labels = skopeo_inspect(release_tools, released.record["image"])["Labels"]
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    assert labels["org.opencontainers.image.revision"] == released.checkout.commit
    assert labels["org.opencontainers.image.source"] == SOURCE_URL
    committed = released.checkout.git("show", "-s", "--format=%cI", "HEAD")
    assert labels["org.opencontainers.image.created"] == committed


def test_image_pulled_back_by_digest_migrates_and_serves(
    released: Released, release_tools: ReleaseTools, empty_database: str
) -> None:
    docker, image = release_tools.docker, released.record["image"]
    # Forget every local name of it, so what runs is what the registry sends back.
    tagged = f"{released.registry}/service:1.0.0"
    subprocess.run(
        [docker, "image", "rm", "--force", tagged, image], capture_output=True, check=False
    )
    pulled = subprocess.run(
        [docker, "pull", image], capture_output=True, text=True, timeout=300, check=False
    )
    assert pulled.returncode == 0, pulled.stderr
    migrated = run_once(docker, image, "migrate", env={"DATABASE_URL": empty_database})
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with container(docker, image, env={"DATABASE_URL": empty_database}) as running:
        assert running.wait_ready().status_code == 200


def locked_packages(lock: Path) -> dict[str, str]:
    """name -> version for every requirement of the lock that applies on Linux."""
    environment = {"sys_platform": "linux", "platform_system": "Linux",
                   "implementation_name": "cpython", "python_version": "3.11",
                   "python_full_version": "3.11.2"}  # fmt: skip
    packages = {}
    for line in lock.read_text().splitlines():
        match = LOCK_LINE.match(line)
        if match is None:
            continue
        if match["marker"] and not Marker(match["marker"]).evaluate(environment):
            continue
        packages[canonicalize_name(match["name"])] = match["version"]
    return packages


def test_sbom_lists_every_locked_package_at_its_version(released: Released) -> None:
    bom = json.loads((released.checkout.path / released.record["sbom"]).read_text())
    assert bom["bomFormat"] == "CycloneDX"
    python = {
        canonicalize_name(c["name"]): c["version"]
        for c in bom["components"]
        if c.get("purl", "").startswith("pkg:pypi/")
    }
    locked = locked_packages(released.checkout.path / "requirements.lock")
    assert len(locked) > 10
    assert {name: python.get(name) for name in locked} == locked
    # Nothing installed that the lock does not name (pip and setuptools are removed).
    assert set(python) - set(locked) == set()
    debian = [c for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/")]
    assert any(c["name"] == "libc6" for c in debian), "the base's Debian packages are missing"
    assert bom["metadata"]["component"]["bom-ref"] == released.record["image"]


def test_sbom_is_valid_cyclonedx_and_an_invalid_one_is_refused(
    released: Released, tmp_path: Path
) -> None:
    python = released.checkout.path / ".tools" / "sbom-venv" / "bin" / "python"
    sbom = released.checkout.path / released.record["sbom"]
    validate_sbom(python, sbom, "1.6")
    bom = json.loads(sbom.read_text())
    bom["components"][0]["type"] = "not-a-type"
    broken = tmp_path / "broken.cdx.json"
    broken.write_text(json.dumps(bom))
    with pytest.raises(ReleaseError, match="not-a-type"):
        validate_sbom(python, broken, "1.6")


@pytest.fixture(scope="module")
def pulled_chart(
    released: Released, release_tools: ReleaseTools, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    into = tmp_path_factory.mktemp("pulled")
    result = subprocess.run(
        [release_tools.helm, "pull", released.record["chart"], "--version", "1.0.0",
         "--plain-http", "--destination", str(into)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return into / "app-1.0.0.tgz"


def test_chart_is_versioned_as_the_release(pulled_chart: Path) -> None:
    with tarfile.open(pulled_chart) as archive:
        member = archive.extractfile("app/Chart.yaml")
        assert member is not None
        chart = yaml.safe_load(member.read())
    assert (chart["version"], chart["appVersion"]) == ("1.0.0", "1.0.0")


def test_chart_pulls_by_its_recorded_digest(
    released: Released, release_tools: ReleaseTools, tmp_path: Path
) -> None:
    reference = f"{released.record['chart']}@{released.record['chart_digest']}"
    result = subprocess.run(
        [release_tools.helm, "pull", reference, "--plain-http", "--destination", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert released.record["chart_digest"] in result.stdout + result.stderr


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_promoted_values_render_the_digest_in_every_container(
    released: Released, release_tools: ReleaseTools, pulled_chart: Path, env: str, tmp_path: Path
) -> None:
    checkout = clean_checkout(tmp_path / "repo")  # its own copy: the diff is only ours
    release_file = tmp_path / "release.json"
    release_file.write_text(json.dumps(released.record))
    result = checkout.make("promote", f"ENV={env}", f"RELEASE={release_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    changed = changed_lines(checkout.git("diff", "--unified=0", "--", f"values/{env}.yaml"))
    repository, digest = released.record["image"].split("@")
    added = [f"+  repository: {repository}", f"+  digest: {digest}", '+  version: "1.0.0"']
    assert sorted(changed) == sorted(added)

    rendered = subprocess.run(
        [release_tools.helm, "template", "app", str(pulled_chart), "--namespace", "app",
         "-f", str(checkout.path / "values" / f"{env}.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    render = Render(tuple(o for o in yaml.safe_load_all(rendered.stdout) if o))
    images = {
        f"{where}/{c['name']}": c["image"]
        for where, _, spec in pod_specs(render)
        for c in containers(spec)
    }
    kinds = {where.split("/")[0] for where in images}
    assert {"Deployment", "Job", "Pod"} <= kinds, images  # app, migration Job, helm test
    assert any(spec.get("initContainers") for _, _, spec in pod_specs(render)), "no init container"
    assert set(images.values()) == {released.record["image"]}, images
    # image.version, written next to the digest, is the pods' version label.
    versions = {
        where: meta.get("labels", {}).get("app.kubernetes.io/version")
        for where, meta, _ in pod_specs(render)
    }
    assert versions == dict.fromkeys(versions, "1.0.0")


def test_promoting_a_newer_release_changes_only_the_digest_and_version_lines(
    released: Released, tmp_path: Path
) -> None:
    checkout = clean_checkout(tmp_path / "repo")
    first = tmp_path / "first.json"
    first.write_text(json.dumps(released.record))
    assert checkout.make("promote", "ENV=prod", f"RELEASE={first}").returncode == 0
    checkout.git("commit", "--quiet", "--all", "--message", "promote 1.0.0")
    newer = tmp_path / "newer.json"
    repository = released.record["image"].split("@")[0]
    newer_image = f"{repository}@sha256:{'ab' * 32}"
    newer.write_text(json.dumps({**released.record, "version": "1.0.1", "image": newer_image}))
    assert checkout.make("promote", "ENV=prod", f"RELEASE={newer}").returncode == 0
    old_digest = released.record["image"].split("@")[1]
    assert changed_lines(checkout.git("diff", "--unified=0")) == [
        f"-  digest: {old_digest}",
        '-  version: "1.0.0"',
        f"+  digest: sha256:{'ab' * 32}",
        '+  version: "1.0.1"',
    ]


def test_a_complete_release_is_never_released_again(
    released: Released, release_tools: ReleaseTools
) -> None:
    before = skopeo_inspect(release_tools, f"{released.registry}/service:1.0.0")["Digest"]
    again = released.checkout.make(
        "release", f"REGISTRY={released.registry}", "VERSION=1.0.0", env=release_env(release_tools)
    )
    assert again.returncode != 0
    said = last_error_lines(again.stdout + again.stderr)
    assert len(said) == 1 and "release 1.0.0 is complete" in said[0], said
    assert "Traceback" not in again.stderr
    assert skopeo_inspect(release_tools, f"{released.registry}/service:1.0.0")["Digest"] == before


def test_an_image_pushed_from_another_commit_is_refused(
    released: Released, release_tools: ReleaseTools, tmp_path: Path
) -> None:
    # Someone pushed 1.1.0 from another commit (its revision label says so); no chart yet.
    docker, other = release_tools.docker, f"{released.registry}/service:1.1.0"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {released.record['image']}\nLABEL org.opencontainers.image.revision={'0' * 40}\n"
    )
    build = [docker, "build", "--quiet", "--tag", other, str(tmp_path)]
    for argv in (build, [docker, "push", other]):
        step = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        assert step.returncode == 0, step.stderr
    pushed = skopeo_inspect(release_tools, other)["Digest"]
    result = released.checkout.make(
        "release", f"REGISTRY={released.registry}", "VERSION=1.1.0", env=release_env(release_tools)
    )
    assert result.returncode != 0
    said = last_error_lines(result.stdout + result.stderr)
    assert len(said) == 1 and f"pushed from commit {'0' * 12}" in said[0], said
    assert skopeo_inspect(release_tools, other)["Digest"] == pushed


def test_a_release_that_failed_halfway_is_completed_by_a_rerun(
    released: Released, release_tools: ReleaseTools
) -> None:
    checkout = released.checkout
    helm = checkout.path / "bin" / "helm"
    # A helm whose push fails, as a registry outage between the two pushes would.
    real_bin = checkout.path / "bin"
    real_target = real_bin.resolve()
    real_bin.unlink()
    real_bin.mkdir()
    for tool in real_target.iterdir():
        (real_bin / tool.name).symlink_to(tool)
    (real_bin / "helm").unlink()
    helm.write_text(
        f'#!/bin/sh\n[ "$1" = push ] && {{ echo "Error: simulated outage" >&2; exit 1; }}\n'
        f'exec {real_target / "helm"} "$@"\n'
    )
    helm.chmod(0o755)
    registry = f"REGISTRY={released.registry}"
    env = release_env(release_tools)
    try:
        failed = checkout.make("release", registry, "VERSION=1.2.0", env=env)
    finally:
        shutil.rmtree(real_bin)
        real_bin.symlink_to(real_target)
    assert failed.returncode != 0
    assert "simulated outage" in failed.stderr
    assert not (checkout.path / "dist" / "release-1.2.0.json").exists()
    half = skopeo_inspect(release_tools, f"{released.registry}/service:1.2.0")["Digest"]

    completed = checkout.make("release", registry, "VERSION=1.2.0", env=env)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    assert "completing the release" in output and "building" not in output
    record = json.loads((checkout.path / "dist" / "release-1.2.0.json").read_text())
    assert record["image"] == f"{released.registry}/service@{half}"
    chart = skopeo_inspect(release_tools, f"{released.registry}/charts/app:1.2.0", "--raw")
    assert chart["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"


def test_a_dirty_work_tree_is_refused(released: Released, release_tools: ReleaseTools) -> None:
    stray = released.checkout.path / "service" / "stray.py"
    stray.write_text("# not committed\n")
    try:
        result = released.checkout.make(
            "release", f"REGISTRY={released.registry}", "VERSION=2.0.0",
            env=release_env(release_tools),
        )  # fmt: skip
    finally:
        stray.unlink()
    said = last_error_lines(result.stdout + result.stderr)
    assert result.returncode != 0
    assert len(said) == 1 and "work tree is dirty" in said[0] and "stray.py" in said[0], said


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["VERSION=2.0.0"], "REGISTRY is required"),
        (["REGISTRY={registry}"], "VERSION is required"),
        (["REGISTRY={registry}", "VERSION=v2.0.0"], "drop the leading v"),
        (["REGISTRY={registry}", "VERSION=2.0"], "is not a semantic version"),
        (["REGISTRY={registry}", "VERSION=2.0.0+build.1"], "drop the +build metadata"),
        (["REGISTRY=HTTP://Registry/x", "VERSION=2.0.0"], "is not host[:port]/namespace"),
        (["REGISTRY=127.0.0.1:{closed_port}/team", "VERSION=2.0.0"], "is unreachable"),
    ],
)
def test_bad_input_gets_one_line_naming_the_fix(
    released: Released, release_tools: ReleaseTools, args: list[str], expected: str
) -> None:
    filled = [a.format(registry=released.registry, closed_port=free_port()) for a in args]
    result = released.checkout.make("release", *filled, env=release_env(release_tools))
    said = last_error_lines(result.stdout + result.stderr)
    assert result.returncode != 0
    assert len(said) == 1 and expected in said[0], said
    assert "Traceback" not in result.stderr
