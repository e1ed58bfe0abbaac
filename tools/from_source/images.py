"""Container images built from local/from-source/images/<name>/ on the local Debian base.

Each image's tag carries its version and a key over its Dockerfile directory, the files
put into its context (binaries from the Go build), its build arguments and the base
image's ID: `docker image inspect` of that tag is the whole cache check, so a machine that
keeps its Docker images rebuilds none, and any change in a recipe builds a new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.from_source import cache
from tools.from_source.pins import IMAGES_DIR

Log = Callable[[str], None]
REPOSITORY_PREFIX = "local/from-source"
BUILD_TIMEOUT_S = 1800


class ImageBuildError(Exception):
    """docker is missing or a build failed; the message has its last lines."""


@dataclass(frozen=True)
class ImageRecipe:
    name: str  # directory under local/from-source/images/, and the repository's last part
    version: str
    files: Mapping[str, Path] = field(default_factory=dict)  # context path -> source file
    trees: Mapping[str, Path] = field(default_factory=dict)  # context dir -> source dir
    build_args: Mapping[str, str] = field(default_factory=dict)
    dockerfile_dir: str = ""  # default: name

    @property
    def recipe_dir(self) -> Path:
        return IMAGES_DIR / (self.dockerfile_dir or self.name)


@dataclass(frozen=True)
class Image:
    tag: str
    seconds: float  # build time (0 when reused)


def docker_cli() -> str:
    configured = os.environ.get("DOCKER", "").strip()
    found = configured or shutil.which("docker")
    if not found:
        raise ImageBuildError("`docker` not found: install Docker (apt-get install docker.io)")
    return found


def image_id(docker: str, ref: str) -> str | None:
    result = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def recipe_key(recipe: ImageRecipe, base_id: str) -> str:
    shared = IMAGES_DIR / "iptables-wrapper"
    paths = [
        (f"recipe/{p.relative_to(recipe.recipe_dir)}", p)
        for p in cache.tree_files(recipe.recipe_dir)
    ]
    paths += [("iptables-wrapper", shared)] if shared.is_file() else []
    paths += sorted(recipe.files.items())
    for target, source in sorted(recipe.trees.items()):
        paths += [(f"{target}/{p.relative_to(source)}", p) for p in cache.tree_files(source)]
    args = [f"{k}={v}" for k, v in sorted(recipe.build_args.items())]
    return cache.key([recipe.name, recipe.version, base_id, *args], paths)


def ensure(recipe: ImageRecipe, *, base_image: str, log: Log = print) -> Image:
    """The recipe's image, built unless an image with its tag exists already."""
    docker = docker_cli()
    base_id = image_id(docker, base_image)
    if base_id is None:
        raise ImageBuildError(
            f"base image {base_image} not found: build it with `bash scripts/ci/base-image.sh`"
        )
    tag = f"{REPOSITORY_PREFIX}/{recipe.name}:{recipe.version}-{recipe_key(recipe, base_id)}"
    if image_id(docker, tag):
        log(f"image {tag}: reusing")
        return Image(tag, 0.0)
    with tempfile.TemporaryDirectory(prefix=f"from-source-{recipe.name}-") as tmp:
        context = Path(tmp)
        shutil.copytree(recipe.recipe_dir, context, dirs_exist_ok=True)
        shared = IMAGES_DIR / "iptables-wrapper"
        if shared.is_file():
            shutil.copy2(shared, context / "iptables-wrapper")
        for target, source in recipe.files.items():
            (context / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / target)
        for target, source in recipe.trees.items():
            shutil.copytree(source, context / target, dirs_exist_ok=True)
            for path in (context / target).rglob("*"):  # module cache files are read-only
                path.chmod(path.stat().st_mode | 0o200)
        args = [arg for k, v in recipe.build_args.items() for arg in ("--build-arg", f"{k}={v}")]
        argv = [docker, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base_image}"]
        argv += [*args, "--tag", tag, str(context)]
        log(f"image {tag}: building")
        started = time.monotonic()
        result = subprocess.run(
            argv,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        tail = "\n  ".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise ImageBuildError(f"image {recipe.name}: docker build failed:\n  {tail}")
    log(f"image {tag}: built in {seconds:.0f}s")
    return Image(tag, seconds)
