"""Where a request's time goes: the real app in-process against a seeded PostgreSQL.

    python -m bench.profile get_item [--requests 5000] [--pyinstrument]

Calls the WSGI app the way gunicorn does (production settings, JSON logs, multiprocess
metrics) in a loop and reports wall and CPU microseconds per request; CPU time hardly
moves with other load on the machine, so it shows what a code change buys even on a busy
host. With --pyinstrument it prints the call tree of the loop. gunicorn itself (HTTP
parsing, access log) is not in this loop: profile it with py-spy on a running server.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.test import EnvironBuilder

from bench.servers import seeded_postgres

SEED_ROWS = 100_000
Environ = dict[str, Any]


_NAMES = (f"profile-{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count())


def environs(scenario: str) -> Iterator[Environ]:
    while True:
        if scenario == "livez":
            builder = EnvironBuilder(path="/livez")
        elif scenario == "get_item":
            builder = EnvironBuilder(path=f"/api/v1/items/{random.randint(1, SEED_ROWS)}")
        elif scenario == "list_page":
            cursor = random.randint(0, SEED_ROWS - 20)
            builder = EnvironBuilder(path="/api/v1/items", query_string=f"limit=20&cursor={cursor}")
        elif scenario == "post_item":
            body = json.dumps({"name": next(_NAMES), "description": "profiled"})
            builder = EnvironBuilder(
                path="/api/v1/items", method="POST", data=body, content_type="application/json"
            )
        else:
            raise SystemExit(
                f"unknown scenario {scenario!r}: livez, get_item, list_page, post_item"
            )
        yield builder.get_environ()


def drive(app: Callable[..., Any], scenario: str, count: int) -> tuple[float, float, int]:
    """Run `count` requests; return wall and CPU seconds, and the number of non-2xx."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    requests = [next(environs_) for environs_ in [environs(scenario)] for _ in range(count)]
    wall, cpu = time.perf_counter(), time.process_time()
    for environ in requests:
        body = app(environ, start_response)
        for _ in body:
            pass
        if hasattr(body, "close"):
            body.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, sum(1 for s in statuses if not s.startswith("2"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", choices=("livez", "get_item", "list_page", "post_item"))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--pyinstrument", action="store_true", help="print the call tree")
    parser.add_argument("--metrics", default="true", help="METRICS_ENABLED for the app")
    args = parser.parse_args(argv)

    with seeded_postgres(SEED_ROWS) as db, tempfile.TemporaryDirectory() as metrics_dir:
        os.environ.update(
            DATABASE_URL=db.url, APP_ENV="prod", LOG_LEVEL="INFO", METRICS_ENABLED=args.metrics,
            PROMETHEUS_MULTIPROC_DIR=metrics_dir,
        )  # fmt: skip
        from service import create_app
        from service.logs import configure_logging

        # The JSON log lines go to a buffer, as they would to a container runtime's pipe.
        sys.stdout = io.StringIO()
        try:
            configure_logging("INFO")
            app = create_app()
            drive(app, args.scenario, min(1000, args.requests))  # warm-up
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001)
                profiler.start()
            wall, cpu, failed = drive(app, args.scenario, args.requests)
            if profiler is not None:
                profiler.stop()
        finally:
            sys.stdout = sys.__stdout__
    per = 1e6 / args.requests
    print(f"{args.scenario}: {wall * per:.0f} us wall, {cpu * per:.0f} us CPU per request "
          f"({args.requests} requests, {failed} non-2xx)")  # fmt: skip
    if profiler is not None:
        print(
            profiler.output_text(
                unicode=True, color=False, show_all=os.environ.get("PROFILE_SHOW_ALL") == "1"
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
