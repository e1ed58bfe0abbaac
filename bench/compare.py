"""A/B (or A/B/C...) of service variants, interleaved, each against its own reference.

    python -m bench.compare --scenarios get_item,post_item \\
        --variant "sync: GUNICORN_THREADS=1" --variant "gthread-4: GUNICORN_THREADS=4" \\
        --variant "before: rev=f002ed8"

A variant is a label, then settings (`VAR=value`) and optionally `rev=<git revision>`
to run that revision's service/ and migrations-compatible code instead of the working
tree. Each variant gets a reference app with its own process model, and each round
runs, per scenario and variant, the reference then the variant: the ratio and the CPU
per request are what to compare on a noisy machine. Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.dataset import parse_size
from bench.measure import SEED_ROWS, Bench, parse_scenarios
from bench.servers import CALLERS_DESCRIPTION, seeded_postgres, server_env, start_server
from bench.wrk import Wrk, WrkMissingError, wrk_path
from tools.service_process import ROOT


@dataclass
class Variant:
    label: str
    env: dict[str, str] = field(default_factory=dict)
    rev: str | None = None

    @classmethod
    def parse(cls, text: str) -> Variant:
        label, _, spec = text.partition(":")
        if not label.strip() or not spec.strip():
            raise argparse.ArgumentTypeError(
                f"--variant {text!r}: expected 'LABEL: VAR=value ... [rev=REVISION]'"
            )
        variant = cls(label.strip())
        for token in spec.split():
            name, sep, value = token.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"--variant {text!r}: {token!r} is not VAR=value")
            if name == "rev":
                variant.rev = value
            else:
                variant.env[name] = value
        return variant


def export_revision(rev: str, into: Path) -> Path:
    """The tracked files of `rev`, unpacked into a directory (the working tree is untouched);
    several variants may run the same revision with different settings."""
    target = into / f"rev-{rev.replace('/', '_')}"
    if target.exists():
        return target
    target.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--variant", type=Variant.parse, action="append", required=True)
    parser.add_argument("--scenarios", default="livez,get_item,list_page,post_item")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--open-loop-rate",
        type=float,
        default=0,
        help="also GET by id at this fixed rate (req/s), open loop, per variant",
    )
    parser.add_argument("--open-loop-duration", type=float, default=20)
    parser.add_argument(
        "--rows",
        default=str(SEED_ROWS),
        help="items in the seeded database (bench/dataset.py), e.g. 100k or 10m",
    )
    args = parser.parse_args(argv)
    scenarios = parse_scenarios(parser, args.scenarios)
    try:
        rows = parse_size(args.rows)
    except ValueError as exc:
        parser.error(f"--rows: {exc}")
    try:
        wrk_path()
    except WrkMissingError as exc:
        print(f"bench.compare: {exc}", file=sys.stderr)
        return 2

    with (
        tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp,
        seeded_postgres(rows) as db,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        bench = Bench(
            Wrk(connections=args.connections),
            db,
            run_s=args.duration,
            warmup_s=args.warmup,
        )
        servers = {}
        for v in args.variant:
            code = export_revision(v.rev, workdir) if v.rev else ROOT
            reference = stack.enter_context(
                start_server(
                    f"{v.label}-reference",
                    server_env(db.url, workdir, reference=True, **v.env),
                    workdir,
                    reference=True,
                )
            )
            service = stack.enter_context(
                start_server(
                    v.label,
                    server_env(db.url, workdir, reference=False, **v.env),
                    workdir,
                    code=code,
                )
            )
            servers[v.label] = (reference, service)
            bench.run(reference, "static", f"{v.label} reference", warmup=True)
            for scenario in scenarios:
                bench.run(service, scenario, f"{v.label} {scenario}", warmup=True)

        ratios: dict[str, list[float]] = {}
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds}", flush=True)
            for scenario in scenarios:
                for label, (reference, service) in servers.items():
                    pair = [
                        (f"{label} reference", reference, "static"),
                        (f"{label} {scenario}", service, scenario),
                    ]
                    rps = bench.in_turn(number, pair)
                    ratio = rps[f"{label} {scenario}"] / rps[f"{label} reference"]
                    ratios.setdefault(f"{label} {scenario}", []).append(ratio)

        open_loop = {}
        failed_open_loop = 0
        if args.open_loop_rate:
            for label, (_, service) in servers.items():
                result, errors = bench.open_loop(
                    service, args.open_loop_rate, args.open_loop_duration
                )
                open_loop[label] = result
                failed_open_loop += errors

    width = max(len(label) for label in [*servers, "variant"]) + 2
    first = next(iter(servers))
    print(f"\nrequests: {CALLERS_DESCRIPTION}")
    print(
        f"{'variant':<{width}}{'scenario':<11}{'req/s':>8}{'ratio':>7}{'p99 ms':>8}"
        f"{'server us':>11}{'db us':>7}{'errors':>8}{'vs ' + first:>24}  ratio per round"
    )
    failed = sum(runs.errors for runs in bench.runs.values())
    for label in servers:
        runs = bench.runs[f"{label} reference"]
        print(
            f"{label:<{width}}{'reference':<11}{runs.median('rps'):>8.0f}{1:>7.2f}"
            f"{runs.median('p99_ms'):>8.1f}{runs.median('server_us'):>11.0f}{0:>7}{runs.errors:>8}"
        )
    for scenario in scenarios:
        for label in servers:
            runs = bench.runs[f"{label} {scenario}"]
            r = ratios[f"{label} {scenario}"]
            print(
                f"{label:<{width}}{scenario:<11}{runs.median('rps'):>8.0f}{statistics.median(r):>7.2f}"
                f"{runs.median('p99_ms'):>8.1f}{runs.median('server_us'):>11.0f}"
                f"{runs.median('database_us'):>7.0f}{runs.errors:>8}"
                f"{_versus(bench, ratios, scenario, label, first):>24}  {[round(x, 2) for x in r]}"
            )
    failed += failed_open_loop
    for label, result in open_loop.items():
        print(
            f"{label:<{width}}open loop at {args.open_loop_rate:.0f} req/s: p50 "
            f"{result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"max {result.max_ms:.1f} ms, errors {result.errors}"
        )
    return 1 if failed else 0


def _versus(
    bench: Bench, ratios: dict[str, list[float]], scenario: str, label: str, first: str
) -> str:
    """How this variant's ratio and CPU per request (server + database) differ from the first
    variant's in the same run: what "within 5%" is judged on."""
    if label == first:
        return ""
    ratio = statistics.median(ratios[f"{label} {scenario}"])
    ratio_first = statistics.median(ratios[f"{first} {scenario}"])

    def cpu(key: str) -> float:
        runs = bench.runs[key]
        return runs.median("server_us") + runs.median("database_us")

    cpu_change = cpu(f"{label} {scenario}") / cpu(f"{first} {scenario}") - 1
    return f"ratio {ratio / ratio_first - 1:+.1%}, CPU {cpu_change:+.1%}"


if __name__ == "__main__":
    sys.exit(main())
