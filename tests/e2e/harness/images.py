"""Build an image with the project's own `make image` and side-load it into kind."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import commands

BUILD_TIMEOUT_S = 1800


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
    )
    return f"{repository}:{tag}"


def kind_load(*, kind: str, cluster: str, image: str) -> None:
    # No registry: the node's containerd gets the image directly.
    commands.run([kind, "load", "docker-image", "--name", cluster, image], timeout=600)
