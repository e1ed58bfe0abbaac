"""One measured load run against a server: wrk's figures plus the CPU spent per request."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import Database, Server, tree_cpu_seconds
from bench.wrk import Wrk, WrkResult

SCENARIOS = ("livez", "get_item", "list_page", "list_by_tag", "post_item", "mixed")
# Every scenario a script in bench/wrk/ can run: `make bench`'s, and the data shapes of
# the data-size mode (bench/sizes.py): a tag on ten items, a POST with five tags.
ALL_SCENARIOS = (*SCENARIOS, "list_by_rare_tag", "post_item_tags")
# Scenarios whose Lua script builds each request (random ids, unique names, the token);
# the others send one fixed URL.
_DYNAMIC = tuple(s for s in ALL_SCENARIOS if s != "livez")
SEED_ROWS = 100_000


@dataclass(frozen=True)
class Measurement:
    """One wrk run, and the CPU the server and PostgreSQL spent per request during it.

    CPU per request moves much less with other load on the machine than requests/s, so
    it shows what a change bought even on a busy machine.
    """

    load: WrkResult
    server_us: float
    database_us: float

    def __getattr__(self, name: str) -> Any:
        return getattr(self.load, name)


@dataclass
class Runs:
    """Every measured run of one (target, scenario), in round order."""

    results: list[Measurement] = field(default_factory=list)
    errors: int = 0  # warm-ups included: a failed request anywhere fails the benchmark

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.results)

    def summary(self) -> dict[str, Any]:
        return {
            "rps": round(self.median("rps"), 1),
            "p50_ms": round(self.median("p50_ms"), 2),
            "p95_ms": round(self.median("p95_ms"), 2),
            "p99_ms": round(self.median("p99_ms"), 2),
            "errors": self.errors,
        }


class Bench:
    """Runs wrk against servers and keeps every result under a key, e.g. "get_item"."""

    def __init__(
        self, wrk: Wrk, database: Database, *, run_s: float, warmup_s: float, quiet: bool = False
    ) -> None:
        self.wrk, self.database = wrk, database
        self.run_s, self.warmup_s, self.quiet = run_s, warmup_s, quiet
        self.runs: dict[str, Runs] = {}

    def run(
        self, server: Server, scenario: str, key: str, *, warmup: bool = False,
        seconds: float | None = None,
    ) -> Measurement:  # fmt: skip
        if server.is_reference:
            script, path = "static", "/"
        elif scenario in _DYNAMIC:
            script, path = scenario, "/"
        else:
            script, path = "static", "/livez"
        database = server.database or self.database
        server_cpu, database_cpu = server.cpu_seconds(), _database_cpu(database)
        load = self.wrk.run(
            server.base_url + path,
            script,
            seconds or (self.warmup_s if warmup else self.run_s),
            nonce=uuid.uuid4().hex[:12],
            dataset=database.dataset,
            callers=server.callers,
        )
        per_request = 1e6 / max(load.requests, 1)
        result = Measurement(
            load,
            server_us=(server.cpu_seconds() - server_cpu) * per_request,
            database_us=(_database_cpu(database) - database_cpu) * per_request,
        )
        runs = self.runs.setdefault(key, Runs())
        runs.errors += load.errors
        if not warmup:
            runs.results.append(result)
        if not self.quiet:
            print(
                f"  {'warm-up' if warmup else 'run':7} {key:28} {load.rps:7.0f} req/s  "
                f"p99 {load.p99_ms:6.1f} ms  CPU/req: server {result.server_us:5.0f} us, "
                f"db {result.database_us:4.0f} us  errors {load.errors} {load.error_kinds or ''}",
                flush=True,
            )
        return result

    def in_turn(self, round_number: int, runs: list[tuple[str, Server, str]]) -> dict[str, float]:
        """Run each (key, server, scenario) once; requests/s by key. Forwards in odd rounds,
        backwards in even ones, so a trend within a round (load arriving or leaving) does
        not always favour the same side of a comparison."""
        ordered = runs if round_number % 2 else runs[::-1]
        return {key: self.run(server, scenario, key).rps for key, server, scenario in ordered}

    def open_loop(
        self, server: Server, rate: float, seconds: float, *, warmup: bool = True,
        wrk: Wrk | None = None,
    ) -> tuple[WrkResult, int]:  # fmt: skip
        """GET by id at a fixed `rate` (open loop), after a warm-up at the same rate unless
        `warmup` is False: the measured run, and the failed requests of both. `wrk`: other
        load than the bench's (fewer connections, for services measured at once)."""

        dataset = (server.database or self.database).dataset

        def once(duration: float) -> WrkResult:
            return (wrk or self.wrk).open_loop(
                server.base_url + "/", rate, duration, nonce=uuid.uuid4().hex[:12],
                dataset=dataset, callers=server.callers,
            )  # fmt: skip

        warm_errors = once(self.warmup_s).errors if warmup else 0
        result = once(seconds)
        return result, warm_errors + result.errors


def parse_scenarios(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """`--scenarios a,b` as a list; an unknown name is a usage error naming the known ones."""
    scenarios = [s for s in text.split(",") if s]
    if unknown := sorted(set(scenarios) - set(ALL_SCENARIOS)):
        parser.error(f"--scenarios: unknown {unknown}: choose from {', '.join(ALL_SCENARIOS)}")
    return scenarios


def write_results(report: dict[str, Any], output: str, failures: list[str]) -> int:
    """Write the report as JSON; the exit status: 1 if any request failed."""
    Path(output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output}")
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def _database_cpu(database: Database) -> float:
    return tree_cpu_seconds(database.postmaster_pid)
