"""Where a request's time goes: the real app in-process against a seeded PostgreSQL.

    python -m bench.profile get_item [--requests 5000] [--pyinstrument | --instructions]
        [--tracing RATIO [--traceparent sampled|unsampled]]

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

With --tracing the app traces (issue 28) at `parentbased_traceidratio` RATIO, its spans
sent to an OTLP/HTTP receiver in this process (the exporter's thread is in the count);
--traceparent gives every request a caller's sampled or unsampled context.
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

from bench.dataset import Dataset, parse_size
from bench.measure import ALL_SCENARIOS, SEED_ROWS
from bench.servers import (
    BENCH_CALLERS,
    WITHOUT_TOKENS,
    BenchCaller,
    bench_auth_env,
    seeded_postgres,
    tracing_env,
)
from tools.otlp_receiver import running_receiver

Environ = dict[str, Any]
PROFILED = ("livez", *(s for s in ALL_SCENARIOS if s not in ("livez", "mixed")))
# A caller's context (W3C traceparent), its flags sampled (01) or not (00).
TRACEPARENTS = {
    "sampled": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "unsampled": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
}


_NAMES = (f"profile-{uuid.uuid4().hex[:12]}-{n}" for n in itertools.count())


def environs(
    scenario: str,
    callers: Sequence[BenchCaller],
    dataset: Dataset,
    extra: dict[str, str] | None = None,
) -> Iterator[Environ]:
    """Request environments, as bench/wrk/<scenario>.lua builds them, taking turns among
    `callers` (their tokens and their rows, as bench/wrk/callers.lua does); `extra` headers
    (a caller's traceparent) on each."""
    rows = dataset.items
    for turn in itertools.count():
        caller = callers[turn % len(callers)]
        headers = {"Authorization": f"Bearer {caller.token()}"} if caller.with_token else {}
        headers.update(extra or {})
        if scenario == "livez":
            builder = EnvironBuilder(path="/livez")
        elif scenario == "get_item":
            path = f"/api/v1/items/{random_id(caller, dataset)}"
            builder = EnvironBuilder(path=path, headers=headers)
        elif scenario == "list_page":
            cursor = random.randint(0, rows - 100)
            builder = EnvironBuilder(
                path="/api/v1/items", query_string=f"limit=20&cursor={cursor}", headers=headers
            )
        elif scenario == "list_by_tag":  # 10% of its owner's items
            cursor = random.randint(0, rows - 1000)
            query = f"tag={caller.popular}&limit=20&cursor={cursor}"
            builder = EnvironBuilder(path="/api/v1/items", query_string=query, headers=headers)
        elif scenario == "list_by_rare_tag":
            query = f"tag={caller.rare}"
            builder = EnvironBuilder(path="/api/v1/items", query_string=query, headers=headers)
        elif scenario in ("post_item", "post_item_tags"):
            body: dict[str, Any] = {"name": next(_NAMES), "description": "profiled"}
            if scenario == "post_item_tags":
                body["tags"] = sorted(_tag_names(caller, dataset, 5))
            builder = EnvironBuilder(
                path="/api/v1/items", method="POST", data=json.dumps(body),
                content_type="application/json", headers=headers,
            )  # fmt: skip
        else:
            raise SystemExit(f"unknown scenario {scenario!r}: {', '.join(PROFILED)}")
        yield builder.get_environ()


def random_id(caller: BenchCaller, dataset: Dataset) -> int:
    """One of the items the caller reaches (random_id in bench/wrk/callers.lua)."""
    slots = [int(slot) for slot in caller.slots]
    k = random.randrange(dataset.items // 10 * len(slots))
    return 10 * (k // len(slots)) + slots[k % len(slots)] + 1


def _tag_names(caller: BenchCaller, dataset: Dataset, count: int) -> set[str]:
    """Distinct tags of the caller's own (random_tag_name in bench/wrk/callers.lua)."""
    names: set[str] = set()
    while len(names) < count:
        q = random.randint(1, dataset.tags // 10 - 1)
        names.add(f"tag-{10 * q + int(random.choice(caller.tag_slots)) + 1}")
    return names


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
    dataset: Dataset | None = None,
    extra: dict[str, str] | None = None,
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

    made = environs(scenario, callers, dataset or Dataset(SEED_ROWS), extra)
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
    scenario: str, requests: int, database_url: str, options: list[str]
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
             "--prepared", str(many), "--warm-up", "300", "--database-url", database_url,
             *options],
            capture_output=True, text=True,
            # One hash seed for every run: dict and set layouts, so their probing, the same.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"the run under valgrind failed:\n{run.stdout}{run.stderr[-3000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) / (many - few)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", choices=PROFILED)
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
    parser.add_argument(
        "--rows", default=str(SEED_ROWS), help="items in the seeded database, e.g. 100k or 10m"
    )
    parser.add_argument(
        "--tracing", metavar="RATIO",
        help="tracing on, parentbased_traceidratio at RATIO (0.01, 1), to a local receiver",
    )  # fmt: skip
    parser.add_argument(
        "--traceparent", choices=tuple(TRACEPARENTS),
        help="every request from a caller whose trace is sampled, or not (with --tracing)",
    )  # fmt: skip
    parser.add_argument("--warm-up", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--prepared", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)  # seeded by the caller
    args = parser.parse_args(argv)
    try:
        dataset = Dataset(parse_size(args.rows))
    except ValueError as exc:
        parser.error(f"--rows: {exc}")

    with contextlib.ExitStack() as stack:
        url = args.database_url or stack.enter_context(seeded_postgres(dataset.items)).url
        options = ["--metrics", args.metrics, "--auth", args.auth, "--rows", str(dataset.items)]
        if args.tracing:
            # One receiver, in this process, for the runs under valgrind too (they inherit
            # the endpoint).
            endpoint = (
                os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or stack.enter_context(running_receiver(decode=False)).endpoint
            )
            os.environ.update(tracing_env(endpoint, args.tracing))
            options += ["--tracing", args.tracing]
        if args.traceparent:
            options += ["--traceparent", args.traceparent]
        if args.instructions:
            per_request = count_instructions(args.scenario, args.requests, url, options)
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
        extra = {"traceparent": TRACEPARENTS[args.traceparent]} if args.traceparent else {}
        from service import create_app
        from service.runtime.gunicorn_conf import JsonAccessLogger, logconfig_dict
        from service.telemetry import tracing

        # The JSON log lines go to a buffer, as they would to a container runtime's pipe.
        sys.stdout = io.StringIO()
        try:
            logging.config.dictConfig(logconfig_dict)
            access = JsonAccessLogger(Config()).access  # requests at INFO, as configured
            app = create_app()
            if args.tracing:
                # What each gunicorn worker does after the fork (post_worker_init): without
                # it the instrumentations run against the API's no-op tracer.
                tracing.start_exporting()
            warm_up = min(args.warm_up, args.requests)
            drive(app, args.scenario, warm_up, access, 0, callers, dataset, extra)
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0001)
                profiler.start()
            wall, cpu, failed = drive(
                app, args.scenario, args.requests, access, args.prepared, callers, dataset, extra
            )
            if profiler is not None:
                profiler.stop()
            # The spans still queued are sent too (under valgrind, they are in the count).
            tracing.stop_exporting(timeout_seconds=60)
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
