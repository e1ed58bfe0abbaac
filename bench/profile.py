"""Where a request's time goes: the real app in-process against a seeded PostgreSQL.

    python -m bench.profile get_item [--requests 5000] [--pyinstrument | --instructions]

Calls the WSGI app the way gunicorn does (production settings, multiprocess metrics),
then writes the JSON access line as gunicorn's logger does, in a loop, and reports wall
and CPU microseconds per request. With --pyinstrument it prints the call tree of the loop.

With --instructions it counts the CPU instructions a request executes (valgrind's
cachegrind: Python, C extensions and libpq, not the kernel or PostgreSQL). The count is
the same from run to run, whatever else the machine is doing, so it settles a 3% A/B
that timings on a shared host cannot: the loop runs twice under valgrind, with few and
with many requests, and the difference divided by the extra requests is the cost of one,
start-up excluded. gunicorn's HTTP parsing and socket work are not in the loop: they are
the same for every route and for the reference; profile them with py-spy on a server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging.config
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from gunicorn.config import Config
from werkzeug.test import EnvironBuilder

from bench.servers import (
    BENCH_CALLERS,
    WITHOUT_TOKENS,
    BenchCaller,
    bench_auth_env,
    seeded_postgres,
)

SEED_ROWS = 100_000
Environ = dict[str, Any]


_NAMES = (f"profile-{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count())


def environs(scenario: str, callers: Sequence[BenchCaller]) -> Iterator[Environ]:
    """Request environments, taking turns among `callers` (their tokens and their rows, as
    bench/wrk/callers.lua does)."""
    for turn in itertools.count():
        caller = callers[turn % len(callers)]
        headers = {"Authorization": f"Bearer {caller.token()}"} if caller.with_token else {}
        if scenario == "livez":
            builder = EnvironBuilder(path="/livez")
        elif scenario == "get_item":
            path = f"/api/v1/items/{random_id(caller)}"
            builder = EnvironBuilder(path=path, headers=headers)
        elif scenario == "list_page":
            cursor = random.randint(0, SEED_ROWS - 60)
            builder = EnvironBuilder(
                path="/api/v1/items", query_string=f"limit=20&cursor={cursor}", headers=headers
            )
        elif scenario == "list_by_tag":  # tag-3: 10% of an owner's items (bench/servers.py)
            cursor = random.randint(0, SEED_ROWS - 600)
            query = f"tag={caller.tag_prefix}tag-3&limit=20&cursor={cursor}"
            builder = EnvironBuilder(path="/api/v1/items", query_string=query, headers=headers)
        elif scenario == "post_item":
            body = json.dumps({"name": next(_NAMES), "description": "profiled"})
            builder = EnvironBuilder(
                path="/api/v1/items", method="POST", data=body, content_type="application/json",
                headers=headers,
            )  # fmt: skip
        else:
            raise SystemExit(
                f"unknown scenario {scenario!r}: livez, get_item, list_page, list_by_tag, post_item"
            )
        yield builder.get_environ()


def random_id(caller: BenchCaller) -> int:
    """A seeded id the caller reaches: any for an admin, else one with its residue mod 3."""
    if caller.residue is None:
        return random.randint(1, SEED_ROWS)
    return random.choice(range(caller.residue or 3, SEED_ROWS + 1, 3))


class _Response:
    """What gunicorn's access logger reads of a response."""

    status_code = 0
    sent = 0
    headers: list[tuple[str, str]] = []  # noqa: RUF012 - replaced per request


def drive(
    app: Callable[..., Any],
    scenario: str,
    count: int,
    access: Callable[..., None],
    prepared: int = 0,
    callers: Sequence[BenchCaller] = WITHOUT_TOKENS,
) -> tuple[float, float, int]:
    """Run `count` requests (of `prepared`, if more, built first); return wall and CPU
    seconds, and the number of non-2xx."""
    statuses: list[str] = []
    response = _Response()
    took = timedelta(milliseconds=1)

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        statuses.append(status)
        response.status_code, response.headers = int(status[:3]), headers
        return lambda data: None

    made = environs(scenario, callers)
    requests = [next(made) for _ in range(max(count, prepared))][:count]
    wall, cpu = time.perf_counter(), time.process_time()
    for environ in requests:
        body = app(environ, start_response)
        response.sent = sum(len(chunk) for chunk in body)
        if hasattr(body, "close"):
            body.close()
        access(response, None, environ, took)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, sum(1 for s in statuses if not s.startswith("2"))


def count_instructions(
    scenario: str, requests: int, database_url: str, metrics: str, auth: str
) -> float:
    """Instructions per request: two runs under valgrind, few and many requests. Both
    build as many request environments (werkzeug's EnvironBuilder costs about as much as
    a request), so the difference is the requests alone."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind: `apt-get install valgrind`")
    few, many = max(50, requests // 10), requests
    if many <= few:
        raise SystemExit("--instructions needs --requests above 50 (1000 is plenty)")
    totals = []
    for count in (few, many):
        run = subprocess.run(
            [valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, "-m", "bench.profile", scenario, "--requests", str(count),
             "--prepared", str(many), "--warm-up", "300", "--metrics", metrics, "--auth", auth,
             "--database-url", database_url],
            capture_output=True, text=True,
        )  # fmt: skip
        found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"the run under valgrind failed:\n{run.stdout}{run.stderr[-3000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) / (many - few)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "scenario", choices=("livez", "get_item", "list_page", "list_by_tag", "post_item")
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--pyinstrument", action="store_true", help="print the call tree")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request (valgrind)"
    )
    parser.add_argument("--metrics", default="true", help="METRICS_ENABLED for the app")
    parser.add_argument(
        "--auth", default="true", choices=("true", "false"),
        help="access control on (one reused bearer token, as a client sends) or off",
    )  # fmt: skip
    parser.add_argument("--warm-up", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)  # seeded by the caller
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(seeded_postgres(SEED_ROWS)).url
        if args.instructions:
            per_request = count_instructions(
                args.scenario, args.requests, url, args.metrics, args.auth
            )
            print(f"{args.scenario}: {per_request / 1000:,.1f} thousand instructions per request")
            return 0
        metrics_dir = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ.update(
            DATABASE_URL=url, APP_ENV="prod", LOG_LEVEL="INFO", METRICS_ENABLED=args.metrics,
            PROMETHEUS_MULTIPROC_DIR=metrics_dir,
        )  # fmt: skip
        callers = WITHOUT_TOKENS
        if args.auth == "true":
            os.environ.update(bench_auth_env(Path(metrics_dir)))
            callers = BENCH_CALLERS
        else:
            os.environ["AUTH_DISABLED"] = "true"
        from service import create_app
        from service.runtime.gunicorn_conf import JsonAccessLogger, logconfig_dict

        # The JSON log lines go to a buffer, as they would to a container runtime's pipe.
        sys.stdout = io.StringIO()
        try:
            logging.config.dictConfig(logconfig_dict)
            access = JsonAccessLogger(Config()).access  # requests at INFO, as configured
            app = create_app()
            drive(app, args.scenario, min(args.warm_up, args.requests), access, 0, callers)
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001)
                profiler.start()
            wall, cpu, failed = drive(
                app, args.scenario, args.requests, access, args.prepared, callers
            )
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
