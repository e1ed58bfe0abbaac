"""The data-size mode: `make bench BENCH_SIZES=100k,10m` (python -m bench.sizes).

Seeds one throwaway PostgreSQL per size with the benchmark's data (bench/dataset.py: N
items, N/100 tags, 3N links, owned by five owners), starts the service on each exactly as
`make bench` does (production settings, access control on), and in every round runs each
scenario against every size back to back, the order alternating between rounds. Each
ratio (a size's requests/s over the smallest size's) compares two measurements taken
seconds apart under the same machine noise; the target is 0.9 for every scenario.

Prints a table, writes bench/results-sizes.json, and exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dataset import Dataset, parse_size, size_label
from bench.measure import Bench, parse_scenarios, write_results
from bench.servers import (
    Database,
    Server,
    production_postgres_major,
    seeded_postgres,
    server_env,
    start_server,
)
from bench.wrk import Wrk, WrkMissingError, wrk_path

# The data shapes of issue 26: GET by id, a page anywhere in the keyset (most of them
# deep), a popular tag (10% of the items), a rare one (10 items), POST with and without
# five tags.
SIZE_SCENARIOS = (
    "get_item", "list_page", "list_by_tag", "list_by_rare_tag", "post_item", "post_item_tags"
)  # fmt: skip
SIZE_TARGET = 0.90  # every scenario at the largest size, against the smallest
DEFAULT_SIZES = "100k,10m"
RESULTS = Path(__file__).resolve().parent / "results-sizes.json"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        sizes = sorted({parse_size(text) for text in args.sizes.split(",") if text.strip()})
    except ValueError as exc:
        parser.error(f"--sizes: {exc}")
    if len(sizes) < 2:
        parser.error(f"--sizes {args.sizes!r}: give at least two sizes to compare, e.g. 100k,10m")
    scenarios = parse_scenarios(parser, args.scenarios)
    settings = {}
    if args.shared_buffers:
        if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", args.shared_buffers):
            parser.error(
                f"--shared-buffers {args.shared_buffers!r}: give a size, e.g. 128MB or 2GB"
            )
        settings["shared_buffers"] = args.shared_buffers
    # Every argument is checked before the tools: a typo is named even where wrk is missing.
    try:
        wrk_path()
    except WrkMissingError as exc:
        print(f"bench.sizes: {exc}", file=sys.stderr)
        return 2
    rounds = args.rounds or (2 if args.quick else 7)
    run_s = args.duration or (2 if args.quick else 4)
    warmup_s = 2 if args.quick else 5
    wrk = Wrk(connections=args.connections, threads=args.wrk_threads)
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sizes-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        databases: list[Database] = []
        for rows in sizes:
            print(f"seeding {size_label(rows)}: {_describe(Dataset(rows))}", flush=True)
            database = stack.enter_context(seeded_postgres(rows, server_settings=settings))
            print(f"  seeded in {database.seeding_s:.0f} s", flush=True)
            databases.append(database)
        servers = [
            stack.enter_context(
                start_server(
                    f"service-{d.dataset.label}",
                    server_env(d.url, workdir, reference=False),
                    workdir,
                    database=d,
                )
            )
            for d in databases
        ]
        bench = Bench(wrk, databases[0], run_s=run_s, warmup_s=warmup_s)
        ratios = _rounds(bench, servers, scenarios, rounds)
    report = _report(bench, databases, scenarios, ratios)
    report["machine"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cores": os.cpu_count(),
        "postgresql": databases[0].version,
        "postgresql_in_production": production_postgres_major(),
        "shared_buffers": databases[0].shared_buffers,
        "load": {
            "connections": wrk.connections,
            "wrk_threads": wrk.threads,
            "warmup_s": warmup_s,
            "run_s": run_s,
            "rounds": rounds,
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "total_s": round(time.monotonic() - started),
    }
    return write_results(report, args.output, print_report(report))


def _describe(dataset: Dataset) -> str:
    return f"{dataset.items:,} items, {dataset.tags:,} tags, {dataset.links:,} links"


def _key(scenario: str, database: Database) -> str:
    return f"{scenario} @{database.dataset.label}"


def _rounds(
    bench: Bench, servers: list[Server], scenarios: list[str], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Each round, each scenario on every size back to back; per scenario and size, its
    requests/s over the smallest size's, one per round."""
    print("warm-up", flush=True)
    for scenario in scenarios:
        for server in servers:
            assert server.database is not None
            bench.run(server, scenario, _key(scenario, server.database), warmup=True)
    ratios: dict[str, dict[str, list[float]]] = {s: {} for s in scenarios}
    for number in range(1, rounds + 1):
        print(f"round {number}/{rounds}", flush=True)
        for scenario in scenarios:
            runs = [(_key(scenario, s.database), s, scenario) for s in servers if s.database]
            rps = bench.in_turn(number, runs)
            base = rps[runs[0][0]]
            for key, server, _ in runs[1:]:
                assert server.database is not None
                label = server.database.dataset.label
                ratios[scenario].setdefault(label, []).append(rps[key] / base)
    return ratios


def _report(
    bench: Bench,
    databases: list[Database],
    scenarios: list[str],
    ratios: dict[str, dict[str, list[float]]],
) -> dict[str, Any]:
    sizes = {
        d.dataset.label: {
            "items": d.dataset.items,
            "tags": d.dataset.tags,
            "links": d.dataset.links,
            "seeding_s": d.seeding_s,
            "seeding_steps_s": d.seeding_steps,
        }
        for d in databases
    }
    rows: dict[str, Any] = {}
    for scenario in scenarios:
        row: dict[str, Any] = {}
        for d in databases:
            runs = bench.runs[_key(scenario, d)]
            row[d.dataset.label] = runs.summary() | {
                "server_us": round(runs.median("server_us")),
                "database_us": round(runs.median("database_us")),
            }
        for label, per_round in ratios[scenario].items():
            median = statistics.median(per_round)
            row[f"ratio {label}"] = {
                "median": round(median, 3),
                "rounds": [round(r, 3) for r in per_round],
                "target": SIZE_TARGET,
                "met": median >= SIZE_TARGET,
            }
        rows[scenario] = row
    errors = {key: runs.errors for key, runs in bench.runs.items()}
    return {"sizes": sizes, "base": databases[0].dataset.label, "scenarios": rows,
            "errors": errors}  # fmt: skip


def print_report(report: dict[str, Any]) -> list[str]:
    """Print the table; return the failures that make the exit status non-zero."""
    labels = list(report["sizes"])
    base = report["base"]
    print()
    for label, size in report["sizes"].items():
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in size["seeding_steps_s"].items())
        print(f"{label}: {size['items']:,} items, {size['tags']:,} tags, {size['links']:,} links;"
              f" seeded in {size['seeding_s']:.0f} s ({steps})")  # fmt: skip
    cpu_width = 16
    header = f"\n{'scenario':<18}" + "".join(f"{'req/s @' + lb:>13}" for lb in labels)
    header += "".join(f"{'CPU us @' + lb:>{cpu_width}}" for lb in labels)
    header += "".join(f"{lb + '/' + base:>12}" for lb in labels[1:]) + "       per round"
    print(header)
    for scenario, row in report["scenarios"].items():
        line = f"{scenario:<18}" + "".join(f"{row[lb]['rps']:>13.0f}" for lb in labels)
        for lb in labels:
            used = f"{row[lb]['server_us']} + {row[lb]['database_us']}"
            line += f"{used:>{cpu_width}}"
        rounds = []
        for lb in labels[1:]:
            ratio = row[f"ratio {lb}"]
            verdict = "ok" if ratio["met"] else "MISSED"
            line += f"{ratio['median']:>6.2f} {verdict:<6}"
            rounds.append(f"{min(ratio['rounds']):.2f}-{max(ratio['rounds']):.2f}")
        print(f"{line}  {', '.join(rounds)}")
    machine = report.get("machine", {})
    if machine:
        print(f"PostgreSQL {machine['postgresql']}, shared_buffers {machine['shared_buffers']}; "
              f"load average {machine['load_average_before']} before, "
              f"{machine['load_average_after']} after; {machine['total_s']} s in all")  # fmt: skip
    print(f"target: every scenario at each size >= {SIZE_TARGET:.2f} of its {base} throughput "
          "(median of the rounds' ratios; CPU us = server + database per request)")  # fmt: skip
    return [f"{key}: {count} failed requests" for key, count in report["errors"].items() if count]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="items per database, comma-separated, e.g. 100k,1m,10m (tags and links follow)",
    )
    p.add_argument("--scenarios", default=",".join(SIZE_SCENARIOS))
    p.add_argument("--quick", action="store_true", help="2 s per run, 2 rounds: not for numbers")
    p.add_argument("--duration", type=float, help="seconds per measured run")
    p.add_argument("--rounds", type=int, help="interleaved rounds")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (client CPU)")
    p.add_argument(
        "--shared-buffers",
        help="PostgreSQL's shared_buffers for every size (default: production's Cluster's, "
        "gitops/database/base/cluster.yaml)",
    )
    p.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    return p


if __name__ == "__main__":
    sys.exit(main())
