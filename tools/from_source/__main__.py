"""`python -m tools.from_source [tools|node-image|all]`: build (or reuse) what a kind
cluster built from source needs. `make from-source` runs `all`.

  tools        kind and skaffold, built from the Go module proxy, into bin/
  node-image   the kind node image with every image the cluster runs preloaded
  all          both (the default)

Prints each component's build time (0 s when reused from the cache) and the total.
"""

from __future__ import annotations

import argparse
import sys
import time

from tools.from_source import build, cache
from tools.from_source.build import FromSourceError
from tools.from_source.gobuild import GoBuildError
from tools.from_source.images import ImageBuildError
from tools.from_source.pins import PinError, load
from tools.kind_sandbox import KindSandboxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.from_source",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", nargs="?", default="all", choices=("tools", "node-image", "all"))
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[from-source {time.monotonic() - started:6.0f}s] {message}", flush=True)

    try:
        pins = load()
        log(f"cache: {cache.cache_dir()} (FROM_SOURCE_CACHE overrides)")
        if args.what in {"tools", "all"}:
            build.install_tools(pins, log=log)
        if args.what in {"node-image", "all"}:
            images = build.node_image(pins, log=log)
            log(f"node image: {images.node}")
    except (PinError, GoBuildError, ImageBuildError, FromSourceError, KindSandboxError) as exc:
        print(f"make from-source: {exc}", file=sys.stderr)
        return 1
    log(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
