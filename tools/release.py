"""`make release` and `make promote`: a commit to an image and a chart in an OCI registry,
known by digest and recorded in dist/release-<VERSION>.json; then into values/<env>.yaml.

A version is immutable. Before anything is built the registry is asked what it already
holds for VERSION: a complete release (image and chart) or an image from another commit
is refused; an image from this commit without its chart (a run that failed halfway) is
completed without rebuilding it. The image is always pushed before the chart, so those
are the only states a failure can leave.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.release_promote import promote
from tools.release_registry import Registry, ReleaseError
from tools.release_sbom import write_sbom

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "app"
IMAGE_NAME = "service"
CHART_REPOSITORY = "charts"
CHART_NAME = "app"
REVISION_LABEL = "org.opencontainers.image.revision"
# semver.org's own expression (2.0.0), without build metadata: `+` cannot appear in an
# OCI tag, and Helm's rewriting of it to `_` would give the image and chart two names.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
TIMEOUT_S = 1800


@dataclass(frozen=True)
class Tools:
    make: str
    docker: str
    helm: str
    cyclonedx: str


def log(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def check_version(version: str) -> str:
    if not version:
        raise ReleaseError("VERSION is required: `make release REGISTRY=... VERSION=1.2.3`")
    if SEMVER.match(version) is None:
        hint = " (drop the leading v)" if version[:1] in "vV" else ""
        hint = " (drop the +build metadata: OCI tags cannot hold `+`)" if "+" in version else hint
        raise ReleaseError(
            f"VERSION={version!r} is not a semantic version MAJOR.MINOR.PATCH[-PRERELEASE]{hint}"
        )
    return version


def run(argv: list[str], what: str, *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a step, streaming nothing; on failure the last line of its error is the message."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise ReleaseError(f"{what}: `{argv[0]}` not found") from None
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        detail = next((line for line in reversed(lines) if "error" in line.lower()), None)
        raise ReleaseError(f"{what} failed: {detail or (lines[-1] if lines else 'no output')}")
    return proc.stdout


def git(*args: str) -> str:
    return run(["git", *args], f"git {args[0]}").strip()


def clean_commit() -> str:
    """HEAD, if the work tree is exactly HEAD (untracked files count: a build could read them)."""
    try:
        status = git("status", "--porcelain")
    except ReleaseError:
        raise ReleaseError(f"{ROOT} is not a git work tree: release from a clone") from None
    if status:
        first = status.splitlines()[0].strip()
        raise ReleaseError(
            f"the work tree is dirty ({first}{', ...' if len(status.splitlines()) > 1 else ''}): "
            "commit or stash it; a release is built from a commit only"
        )
    return git("rev-parse", "HEAD")


def build_and_push(tools: Tools, *, reference: str, version: str, commit: str, source: str) -> None:
    """`make image` as everyone builds it, with the release's name and OCI labels."""
    created = git("show", "-s", "--format=%cI", commit)
    log(f"building {reference} from {commit[:12]}")
    run(
        [tools.make, "--no-print-directory", "image",
         f"IMAGE={reference.rsplit(':', 1)[0]}", f"TAG={version}",
         f"IMAGE_VERSION={version}", f"IMAGE_REVISION={commit}", f"IMAGE_SOURCE={source}",
         # The commit's time, not the clock's: the label says which code, not when a
         # machine happened to build it.
         f"DOCKER_BUILD_ARGS=--label org.opencontainers.image.created={created}",
         f"DOCKER={tools.docker}"],
        "make image",
    )  # fmt: skip
    log(f"pushing {reference}")
    run([tools.docker, "push", reference], f"docker push {reference}")


def package_and_push_chart(tools: Tools, registry: Registry, version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="chart-") as tmp:
        # version and appVersion are set in the package, never committed: the tag decides.
        run(
            [tools.helm, "package", str(CHART), "--version", version, "--app-version", version,
             "--destination", tmp],
            "helm package",
        )  # fmt: skip
        package = Path(tmp) / f"{CHART_NAME}-{version}.tgz"
        target = f"oci://{registry.repository(CHART_REPOSITORY)}"
        plain = ["--plain-http"] if registry.plain_http else []
        log(f"pushing chart {CHART_NAME} {version} to {target}")
        run([tools.helm, "push", str(package), target, *plain], "helm push")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def check_what_the_registry_holds(registry: Registry, version: str, commit: str) -> bool:
    """Whether VERSION's image is already pushed from `commit` (a release to complete);
    refuses every state a release must not touch. False: nothing there yet."""
    tagged = f"{registry.repository(IMAGE_NAME)}:{version}"
    existing = registry.image(IMAGE_NAME, version)
    chart_digest = registry.manifest_digest(f"{CHART_REPOSITORY}/{CHART_NAME}", version)
    if existing is not None and chart_digest is not None:
        raise ReleaseError(
            f"release {version} is complete in {registry.address} (image {existing.digest}, "
            "chart pushed): versions are immutable, release a new VERSION"
        )
    if chart_digest is not None:
        raise ReleaseError(
            f"chart {CHART_NAME} {version} is in {registry.address} without image {tagged}: "
            "not made by `make release`; release a new VERSION"
        )
    if existing is None:
        return False
    built_from = existing.labels.get(REVISION_LABEL, "")
    if built_from != commit:
        raise ReleaseError(
            f"{tagged} was pushed from commit {built_from[:12] or '(unlabelled)'}, not "
            f"{commit[:12]}: versions are immutable, release a new VERSION"
        )
    return True


def release(
    *, registry: Registry, version: str, tools: Tools, source: str, dist: Path
) -> dict[str, str]:
    check_version(version)
    commit = clean_commit()
    if not source:
        source = git("remote", "get-url", "origin") if _has_origin() else ""
    if not source:
        raise ReleaseError(
            "SOURCE is required (no git remote `origin`): SOURCE=<repository URL> for the "
            "org.opencontainers.image.source label"
        )
    registry.check_reachable()

    image_repository = registry.repository(IMAGE_NAME)
    tagged = f"{image_repository}:{version}"
    if check_what_the_registry_holds(registry, version, commit):
        log(f"{tagged} is already pushed from this commit: completing the release")
    else:
        build_and_push(tools, reference=tagged, version=version, commit=commit, source=source)

    pushed = registry.image(IMAGE_NAME, version)
    if pushed is None:
        raise ReleaseError(f"{tagged} is not in the registry after the push: retry the release")
    pinned = f"{image_repository}@{pushed.digest}"
    # The SBOM describes the registry's copy, byte for byte the one clusters will pull.
    run([tools.docker, "pull", "--quiet", pinned], f"docker pull {pinned}")
    sbom = dist / f"sbom-{version}.cdx.json"
    epoch = git("show", "-s", "--format=%ct", commit)
    log(f"writing {sbom.relative_to(dist.parent) if dist.parent in sbom.parents else sbom}")
    write_sbom(
        docker=tools.docker, image=pinned, version=version, cyclonedx=tools.cyclonedx,
        out=sbom, created_epoch=epoch,
    )  # fmt: skip

    package_and_push_chart(tools, registry, version)
    chart_digest = registry.manifest_digest(f"{CHART_REPOSITORY}/{CHART_NAME}", version)
    record = {
        "version": version,
        "commit": commit,
        "image": pinned,
        "chart": f"oci://{registry.repository(CHART_REPOSITORY)}/{CHART_NAME}",
        "chart_version": version,
        "chart_digest": chart_digest or "",
        "sbom": str(sbom.relative_to(ROOT) if ROOT in sbom.parents else sbom),
        "source": source,
    }
    out = dist / f"release-{version}.json"
    write_atomically(out, json.dumps(record, indent=2) + "\n")
    log(f"released {version}: {pinned}; record in {out}")
    return record


def _has_origin() -> bool:
    proc = subprocess.run(
        ["git", "remote"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
    )
    return "origin" in proc.stdout.split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="build, push and record a release")
    rel.add_argument("--registry", default="")
    rel.add_argument("--version", default="")
    rel.add_argument("--source", default="", help="repository URL (default: git remote origin)")
    rel.add_argument("--dist", type=Path, default=ROOT / "dist")
    rel.add_argument("--make", default=os.environ.get("MAKE", "make"))
    rel.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    rel.add_argument("--helm", default=os.environ.get("HELM", "helm"))
    rel.add_argument("--skopeo", default=os.environ.get("SKOPEO", "skopeo"))
    rel.add_argument("--cyclonedx", default="cyclonedx-py")
    pro = sub.add_parser("promote", help="write a release's image into values/<env>.yaml")
    pro.add_argument("--env", default="")
    pro.add_argument("--release", default="")
    pro.add_argument("--values-dir", type=Path, default=ROOT / "values")
    sbom = sub.add_parser("sbom", help="write the CycloneDX SBOM of an image (name@sha256:...)")
    sbom.add_argument("--image", required=True)
    sbom.add_argument("--version", required=True)
    sbom.add_argument("--output", type=Path, required=True)
    sbom.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
    sbom.add_argument("--cyclonedx", default="cyclonedx-py")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            registry = Registry.parse(args.registry, skopeo=args.skopeo)
            tools = Tools(
                make=args.make, docker=args.docker, helm=args.helm, cyclonedx=args.cyclonedx
            )
            release(
                registry=registry, version=args.version, tools=tools, source=args.source,
                dist=args.dist,
            )  # fmt: skip
        elif args.command == "promote":
            written = promote(env=args.env, release=args.release, values_dir=args.values_dir)
            log(f"promoted {args.release} into {written}; review with: git diff -- {written}")
        else:
            write_sbom(
                docker=args.docker, image=args.image, version=args.version,
                cyclonedx=args.cyclonedx, out=args.output,
                created_epoch=git("show", "-s", "--format=%ct", "HEAD"),
            )  # fmt: skip
    except ReleaseError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
