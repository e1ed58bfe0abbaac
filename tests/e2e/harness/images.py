"""Build an image with the project's own `make image` and side-load it into kind."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.harness import commands

BUILD_TIMEOUT_S = 1800
LOAD_TIMEOUT_S = 600
# Builds whose images go to `kind load` (make image sets it too; skaffold needs it in its
# environment): no default provenance attestation, so a one-platform image is a plain
# manifest, not an index with an attestation entry the node's containerd cannot import.
NO_DEFAULT_ATTESTATIONS = {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
# What `ctr images import` in the node prints for kind issues 3795 and 4066.
_MISSING_CONTENT = re.compile(r"content digest \S+ not found")


class KindLoadError(AssertionError):
    pass


def build_image(*, make: str, context: Path, docker: str, repository: str, tag: str) -> str:
    """`make -C CONTEXT image`: the same Dockerfile target, build args and CA secret as users.

    BASE_IMAGE and the other image.mk settings come from the environment as usual.
    """
    commands.run(
        [
            make,
            "-C",
            str(context),
            "image",
            f"IMAGE={repository}",
            f"TAG={tag}",
            f"DOCKER={docker}",
        ],
        timeout=BUILD_TIMEOUT_S,
        env=NO_DEFAULT_ATTESTATIONS,
    )
    return f"{repository}:{tag}"


def kind_load(*, kind: str, cluster: str, image: str) -> None:
    # No registry: the node's containerd gets the image directly.
    try:
        commands.run(
            [kind, "load", "docker-image", "--name", cluster, image], timeout=LOAD_TIMEOUT_S
        )
    except commands.CommandError as exc:
        raise KindLoadError(load_failure_message(image, exc)) from None


def load_failure_message(image: str, error: commands.CommandError) -> str:
    """kind's error, and the known cause when its output shows it."""
    if not _MISSING_CONTENT.search(error.stdout + error.stderr):
        return f"`kind load` of {image} failed:\n{error}"
    return (
        f"`kind load` of {image} failed with `content digest ... not found`: kind issues 3795 "
        "and 4066. Docker's containerd image store (the default of Docker 29 and of Docker "
        "Desktop) saves an image as an OCI index, and the node's `ctr images import "
        "--all-platforms` wants every manifest it lists: a provenance attestation of a build, "
        "or the other platforms of a pulled image. Build without default attestations "
        "(BUILDX_NO_DEFAULT_ATTESTATIONS=1, which `make image`, `make dev` and this suite "
        "set; or `docker buildx build --provenance=false`), or turn the containerd image "
        'store off: {"features": {"containerd-snapshotter": false}} in '
        "/etc/docker/daemon.json and restart Docker (what hosted CI does, "
        f"scripts/ci/docker-classic-image-store.sh).\n{error}"
    )
