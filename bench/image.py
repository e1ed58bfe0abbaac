"""`make bench-image`: what the image costs in size, build time and start time.

Prints the runtime image's size and its size over the base image, the time of a build
without layer cache, of a rebuild after a one-line code change, and from `docker run`
to the first 200 from /readyz (production flags, a real PostgreSQL, median of several).
Builds run in a copy of the build context, so the working tree is never touched.
Targets (issue 3): at most 60 MB over the base, code-only rebuild under 10 s, ready
under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tools.localpg import free_port, throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent
BENCH_REPOSITORY = "service-bench"
# What the build reads (.dockerignore allows only these) and what runs it.
CONTEXT = ("Dockerfile", ".dockerignore", "requirements.lock", "alembic.ini", "pyproject.toml",
           "service", "migrations", "make/image.mk")  # fmt: skip
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", "/tmp", "--tmpfs", "/run/metrics"]  # fmt: skip


def docker() -> str:
    return os.environ.get("DOCKER", "docker")


def sh(argv: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        sys.exit(f"bench-image: {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def copy_context(destination: Path) -> None:
    for name in CONTEXT:
        source = ROOT / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)


def build(context: Path, tag: str, *extra_args: str) -> float:
    """`make image` in `context`; returns wall-clock seconds."""
    env = {**os.environ, "DOCKER_BUILD_ARGS": " ".join(extra_args)}
    started = time.monotonic()
    sh(["make", "--no-print-directory", "-C", str(context), "-f", "make/image.mk", "image",
        f"IMAGE={BENCH_REPOSITORY}", f"TAG={tag}", f"DOCKER={docker()}"], env=env)  # fmt: skip
    return time.monotonic() - started


def image_size(image: str) -> int:
    return int(sh([docker(), "image", "inspect", "--format", "{{.Size}}", image]).strip())


def time_to_ready(image: str, database_url: str, timeout: float = 30) -> float:
    port = free_port()
    started = time.monotonic()
    env = [f"--env=DATABASE_URL={database_url}", f"--env=PORT={port}"]
    cid = sh([docker(), "run", "--detach", "--network", "host", *HARDENED, *env, image]).strip()
    try:
        while time.monotonic() - started < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.01)
        logs = subprocess.run([docker(), "logs", cid], capture_output=True, text=True).stderr
        sys.exit(f"bench-image: /readyz not 200 within {timeout}s:\n{logs}")
    finally:
        subprocess.run([docker(), "rm", "--force", cid], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="docker run -> /readyz samples")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    base = os.environ.get("BASE_IMAGE", "python:3.12-slim-bookworm")
    results: dict[str, object] = {"base_image": base}
    tags = []
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        context = Path(tmp)
        copy_context(context)
        # Cold: no layer cache. pip's downloads still come from the BuildKit cache mount
        # (the Dockerfile keeps them there on purpose), so this is the network-free cost.
        results["cold_build_s"] = round(build(context, "cold", "--no-cache"), 1)
        tags.append("cold")
        results["cached_rebuild_s"] = round(build(context, "cached"), 1)
        tags.append("cached")
        init = context / "service" / "__init__.py"
        init.write_text(init.read_text() + "\n# bench-image: a one-line code change\n")
        results["code_change_rebuild_s"] = round(build(context, "code-change"), 1)
        tags.append("code-change")

    image = f"{BENCH_REPOSITORY}:code-change"
    size, base_size = image_size(image), image_size(base)
    results["image_mb"] = round(size / 1e6, 1)
    results["base_mb"] = round(base_size / 1e6, 1)
    results["over_base_mb"] = round((size - base_size) / 1e6, 1)

    with throwaway_postgres() as postgres:
        url = postgres.url()
        sh([docker(), "run", "--rm", "--network", "host", *HARDENED,
            f"--env=DATABASE_URL={url}", image, "migrate"])  # fmt: skip
        samples = [time_to_ready(image, url) for _ in range(args.starts)]
    results["start_to_ready_s"] = {
        "median": round(statistics.median(samples), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "samples": len(samples),
    }
    for tag in tags:
        subprocess.run([docker(), "rmi", f"{BENCH_REPOSITORY}:{tag}"], capture_output=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    ready = results["start_to_ready_s"]
    assert isinstance(ready, dict)
    print(f"base image                {base} ({results['base_mb']} MB)")
    print(f"runtime image             {results['image_mb']} MB, "
          f"{results['over_base_mb']} MB over the base   (target <= 60)")  # fmt: skip
    print(f"cold build (no cache)     {results['cold_build_s']} s")
    print(f"rebuild, nothing changed  {results['cached_rebuild_s']} s")
    print(f"rebuild, one-line change  {results['code_change_rebuild_s']} s   (target < 10)")
    spread = f"min {ready['min']}, max {ready['max']}, n={ready['samples']}"
    print(f"docker run -> /readyz     {ready['median']} s median ({spread})   (target < 2)")


if __name__ == "__main__":
    main()
