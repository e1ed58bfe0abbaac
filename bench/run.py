"""`make bench`: the service under load against bare Flask on the same gunicorn.

Starts a throwaway PostgreSQL seeded with 100,000 items, the service (`python -m service
serve`, production settings, access control on: every API request carries a bearer token
minted from a bench key), the same service with METRICS_ENABLED=false, the same with
AUTH_DISABLED=true (auth's cost on GET by id, side by side), and the
reference app (bench/reference_app.py) under the same gunicorn process model. Each round
runs, per scenario, the reference then the scenario, so every ratio compares two
measurements taken seconds apart under the same machine noise. Then: p99 latency of GET
by id at 70% of its measured maximum (open loop), and worker RSS over a long mixed run.

Prints a table, writes bench/results.json, and exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.collector import LOAD_SHARE, collector_failures, running_collectors
from bench.collector import report_lines as collector_report_lines
from bench.comparisons import (
    PEER_SCENARIOS,
    peer_figures,
    peer_key,
    peer_server,
    print_comparisons,
    relative_figures,
)
from bench.measure import SCENARIOS, SEED_ROWS, Bench, write_results
from bench.servers import (
    CALLERS_DESCRIPTION,
    Server,
    metrics_text,
    non_2xx_answers,
    production_postgres_major,
    rss_kib,
    seeded_postgres,
    server_env,
    start_server,
    tracing_env,
)
from bench.wrk import Wrk, WrkMissingError, wrk_path
from service.telemetry.metrics_buffer import FLUSH_SECONDS
from tools.service_process import stop_process

# Minimum ratio to the reference (issue 7); mixed has none, it is reported for scale.
RATIO_TARGETS = {
    "livez": 0.80, "get_item": 0.45, "list_page": 0.35, "list_by_tag": 0.30, "post_item": 0.30
}  # fmt: skip
METRICS_COMPARED = ("livez", "get_item")
P99_TARGET_MS = 25.0
OPEN_LOOP_SHARE = 0.70
RSS_GROWTH_LIMIT = 0.05
METRICS_COST_LIMIT = 0.10
AUTH_COMPARED = ("get_item",)
AUTH_COST_LIMIT = 0.10  # issue 16: auth may cost at most 10% of GET-by-id throughput
# Issue 28: GET by id with tracing at 1% parent-based sampling and at 100%, beside the
# service (tracing off), in the same rounds; spans go to a local OTLP receiver.
TRACING_COMPARED = ("get_item",)
TRACING_SAMPLES = {"1%": "0.01", "100%": "1"}
# A collector that is down or answers 2 s late: bench/collector.py.
RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Plan:
    warmup_s: float
    run_s: float
    rounds: int
    rss_s: float
    open_loop_s: float
    collector_rounds: int  # of the collector variants at once, open_loop_s / 4 each


# Many short rounds rather than a few long ones: other load on the machine comes in
# bursts, and a burst is likelier to hit both halves of a short pair than of a long one.
# The collector's: its five services run at once, each at a fifth of the rate; twenty
# rounds of 5 s give each variant ~13,500 requests to take its p99 over (bench/collector.py).
FULL = Plan(warmup_s=5, run_s=4, rounds=7, rss_s=60, open_loop_s=20, collector_rounds=20)
QUICK = Plan(warmup_s=2, run_s=2, rounds=2, rss_s=10, open_loop_s=5, collector_rounds=2)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        run_s=args.duration or plan.run_s,
        rounds=args.rounds or plan.rounds,
        rss_s=args.rss_duration or plan.rss_s,
    )
    try:
        wrk_path()
    except WrkMissingError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    wrk = Wrk(connections=args.connections, threads=args.wrk_threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        report = _measure(Path(tmp), wrk, plan, durable=args.durable)
    report["machine"] = _machine(
        wrk,
        plan,
        load_before,
        report.pop("_postgres_version"),
        report.pop("_gunicorn"),
        durable=args.durable,
    )
    return write_results(report, args.output, _print_report(report))


def _measure(workdir: Path, wrk: Wrk, plan: Plan, *, durable: bool) -> dict[str, Any]:
    print(f"seeding PostgreSQL with {SEED_ROWS:,} items ...", flush=True)
    with seeded_postgres(SEED_ROWS, durable=durable) as db, contextlib.ExitStack() as stack:
        collectors = stack.enter_context(running_collectors())

        def start(name: str, *, reference: bool = False, **env: str) -> Server:
            full_env = server_env(db.url, workdir, reference=reference, **env)
            return stack.enter_context(start_server(name, full_env, workdir, reference=reference))

        reference = start("reference", reference=True)
        service = start("service")
        no_metrics = start("service-no-metrics", METRICS_ENABLED="false")
        no_auth = start("service-no-auth", AUTH_DISABLED="true")
        traced = {
            share: start(f"service-tracing-{share.rstrip('%')}pct",
                         **tracing_env(collectors.healthy, ratio))
            for share, ratio in TRACING_SAMPLES.items()
        }  # fmt: skip
        peer = stack.enter_context(peer_server(db, workdir))
        process_model = _process_model(service)
        print(f"gunicorn: {process_model}", flush=True)
        bench = Bench(wrk, db, run_s=plan.run_s, warmup_s=plan.warmup_s)

        print("warm-up", flush=True)
        bench.run(reference, "static", "reference", warmup=True)
        for scenario in SCENARIOS:
            bench.run(service, scenario, scenario, warmup=True)
        for scenario in METRICS_COMPARED:
            bench.run(no_metrics, scenario, f"{scenario} (metrics off)", warmup=True)
        for scenario in AUTH_COMPARED:
            bench.run(no_auth, scenario, f"{scenario} (auth off)", warmup=True)
        for scenario in TRACING_COMPARED:
            for share, server in traced.items():
                bench.run(server, scenario, f"{scenario} (tracing {share})", warmup=True)
        for scenario in PEER_SCENARIOS:
            bench.run(peer, scenario, peer_key(scenario), warmup=True)

        ratios: dict[str, list[float]] = {s: [] for s in SCENARIOS}
        metrics_costs: dict[str, list[float]] = {s: [] for s in METRICS_COMPARED}
        auth_costs: dict[str, list[float]] = {s: [] for s in AUTH_COMPARED}
        tracing_costs: dict[str, list[float]] = {
            f"{s} (tracing {share})": [] for s in TRACING_COMPARED for share in traced
        }
        over_peer: dict[str, list[float]] = {s: [] for s in PEER_SCENARIOS}
        for round_number in range(1, plan.rounds + 1):
            print(f"round {round_number}/{plan.rounds}", flush=True)
            for scenario in SCENARIOS:
                runs = [("reference", reference, "static"), (scenario, service, scenario)]
                if scenario in METRICS_COMPARED:
                    runs.append((f"{scenario} (metrics off)", no_metrics, scenario))
                if scenario in AUTH_COMPARED:
                    runs.append((f"{scenario} (auth off)", no_auth, scenario))
                if scenario in TRACING_COMPARED:
                    runs += [(f"{scenario} (tracing {share})", server, scenario)
                             for share, server in traced.items()]  # fmt: skip
                if scenario in PEER_SCENARIOS:
                    runs.append((peer_key(scenario), peer, scenario))
                rps = bench.in_turn(round_number, runs)
                if scenario in PEER_SCENARIOS:
                    over_peer[scenario].append(rps[scenario] / rps[peer_key(scenario)])
                ratios[scenario].append(rps[scenario] / rps["reference"])
                if scenario in METRICS_COMPARED:
                    off = rps[f"{scenario} (metrics off)"]
                    metrics_costs[scenario].append(1 - rps[scenario] / off)
                if scenario in AUTH_COMPARED:
                    auth_costs[scenario].append(1 - rps[scenario] / rps[f"{scenario} (auth off)"])
                if scenario in TRACING_COMPARED:
                    for key in (k for k in tracing_costs if k.startswith(f"{scenario} (")):
                        tracing_costs[key].append(1 - rps[key] / rps[scenario])

        open_loop = _open_loop(service, bench, plan)
        server_non_2xx = _non_2xx_answers(service)
        for server in traced.values():
            server_non_2xx += _non_2xx_answers(server)
        # Their CPU back for the collector runs and the RSS run.
        for server in (no_metrics, no_auth, peer, *traced.values()):
            stop_process(server.process, timeout=30)
        # A share of the traced service's closed-loop rate that keeps the host half busy.
        collector_rate = LOAD_SHARE * bench.runs["get_item (tracing 1%)"].median("rps")
        collector_p99 = collector_failures(
            start, bench, collector_rate, collectors,
            rounds=plan.collector_rounds, seconds=plan.open_loop_s / 4,
        )  # fmt: skip
        stack.close()  # free the CPU before the long RSS run
        with stack:
            no_recycling = start("service-no-recycling", GUNICORN_MAX_REQUESTS="0")
            # The same open loop without worker recycling: what a recycle costs the tail.
            open_loop_steady = _open_loop(no_recycling, bench, plan)
            rss = _rss_growth(no_recycling, bench, plan)

    return {
        "scenarios": {
            s: bench.runs[s].summary() | {"ratio": round(statistics.median(ratios[s]), 3)}
            for s in SCENARIOS
        },
        "reference": bench.runs["reference"].summary(),
        "rounds": {s: [round(r, 3) for r in ratios[s]] for s in SCENARIOS},
        "peer": peer_figures(bench, over_peer),
        "relative_to_get": relative_figures(ratios),
        "get_item_at_70_percent": open_loop,
        "get_item_at_70_percent_without_recycling": open_loop_steady,
        "metrics_cost": {s: _metrics_cost(bench, s, c) for s, c in metrics_costs.items()},
        "auth_cost": {
            s: _cost(bench, s, f"{s} (auth off)", c, AUTH_COST_LIMIT) for s, c in auth_costs.items()
        },
        "tracing_cost": {key: _tracing_cost(bench, key, c) for key, c in tracing_costs.items()},
        "tracing_collector_failures": collector_p99,
        "worker_rss": rss,
        "cpu_us_per_request": {
            key: {
                "server": round(runs.median("server_us")),
                "database": round(runs.median("database_us")),
            }
            for key, runs in bench.runs.items()
            if runs.results
        },
        "errors": {key: runs.errors for key, runs in bench.runs.items()}
        | {
            "open loop": open_loop["errors"],
            "open loop without recycling": open_loop_steady["errors"],
            "open loops with the collector down or slow": collector_p99["errors"],
            "RSS run": rss["errors"],
            "non-2xx counted by the service itself": server_non_2xx,
        },
        "_postgres_version": db.version,
        "_gunicorn": process_model,
    }


def _process_model(server: Server) -> dict[str, Any]:
    """What gunicorn actually runs (its own log line names the worker class)."""
    from service.config import Settings

    # The caller's GUNICORN_*/DB_* as the servers got them; the placeholder URL (loopback,
    # so production settings accept it without TLS) is never connected to.
    placeholders = {"DATABASE_URL": "postgresql://x@127.0.0.1/db"}
    settings = Settings.from_env({**os.environ, **placeholders})
    log = server.log_path.read_text(errors="replace")
    worker_class = next(
        (
            json.loads(line)["message"].split(": ", 1)[1]
            for line in log.splitlines()
            if '"Using worker: ' in line
        ),
        "unknown",
    )
    return {
        "workers": len(server.worker_pids()),
        "threads": settings.gunicorn_threads,
        "worker_class": worker_class,
        "keepalive_s": settings.gunicorn_keepalive,
        "max_requests": settings.gunicorn_max_requests,
        "db_pool_size": settings.db_pool_size,
    }


def _open_loop(service: Server, bench: Bench, plan: Plan) -> dict[str, Any]:
    """GET by id at a fixed rate (open loop): the latency a client sees with headroom left.

    The rate is 70% of the maximum this instance reaches just before (closed loop), not of
    the rounds' median: a shared host's speed drifts over a run by tens of percent, and 70%
    of an earlier, faster moment's maximum can be an overload rather than headroom.
    """
    peak = bench.run(service, "get_item", f"get_item peak ({service.name})").load.rps
    rate = OPEN_LOOP_SHARE * peak
    print(
        f"open loop: GET by id at {rate:.0f} req/s ({OPEN_LOOP_SHARE:.0%} of {peak:.0f}, "
        "the maximum just measured)",
        flush=True,
    )
    result, errors = bench.open_loop(service, rate, plan.open_loop_s)
    print(
        f"  {result.rps:.0f} req/s  p50 {result.p50_ms:.1f} ms  p99 {result.p99_ms:.1f} ms  "
        f"max {result.max_ms:.1f} ms  errors {result.errors} {result.error_kinds or ''}",
        flush=True,
    )
    return {
        "peak_rps": round(peak, 1),
        "rate": round(rate, 1),
        "achieved_rps": round(result.rps, 1),
        "requests": result.requests,
        "p50_ms": round(result.p50_ms, 2),
        "p95_ms": round(result.p95_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "max_ms": round(result.max_ms, 2),
        "errors": errors,
        "p99_target_ms": P99_TARGET_MS,
        "met": result.p99_ms <= P99_TARGET_MS,
    }


def _metrics_cost(bench: Bench, scenario: str, per_round: list[float]) -> dict[str, Any]:
    return _cost(bench, scenario, f"{scenario} (metrics off)", per_round, METRICS_COST_LIMIT)


def _cost(
    bench: Bench, scenario: str, off_key: str, per_round: list[float], limit: float
) -> dict[str, Any]:
    """Throughput lost to a feature (metrics, auth), from requests/s and from CPU per request.

    The server is CPU-bound, so throughput goes as 1 / CPU per request; the CPU figure
    is the same cost without the noise other load puts on requests/s, so it decides.
    """
    on, off = bench.runs[scenario], bench.runs[off_key]
    cpu_on = on.median("server_us") + on.median("database_us")
    cpu_off = off.median("server_us") + off.median("database_us")
    from_cpu = 1 - cpu_off / cpu_on
    return {
        "cost": round(statistics.median(per_round), 3),
        "rounds": [round(x, 3) for x in per_round],
        "cost_from_cpu": round(from_cpu, 3),
        "off": off.summary(),
        "met": from_cpu < limit,
    }


def _tracing_cost(bench: Bench, key: str, per_round: list[float]) -> dict[str, Any]:
    """Throughput lost to tracing against the same service without it (no target: the
    cost is reported; the production ratio is chosen from it, docs/performance.md)."""
    scenario = key.split(" ")[0]
    on, off = bench.runs[key], bench.runs[scenario]
    cpu_on = on.median("server_us") + on.median("database_us")
    cpu_off = off.median("server_us") + off.median("database_us")
    return {
        "rps": round(on.median("rps"), 1),
        "off_rps": round(off.median("rps"), 1),
        "cost": round(statistics.median(per_round), 3),
        "rounds": [round(x, 3) for x in per_round],
        "cost_from_cpu": round(1 - cpu_off / cpu_on, 3),
        "server_us": round(on.median("server_us")),
    }


def _rss_growth(server: Server, bench: Bench, plan: Plan) -> dict[str, Any]:
    """Worker RSS before and after a long mixed run, on a server with recycling off.

    Recycling (GUNICORN_MAX_REQUESTS) would replace the workers mid-run and hide a leak,
    so this instance runs without it; production keeps it as a second line of defence.
    """
    print(f"worker RSS over {plan.rss_s:.0f} s of mixed load (recycling off)", flush=True)
    for scenario in ("get_item", "list_page", "post_item", "mixed"):
        bench.run(server, scenario, f"rss warm-up ({scenario})", warmup=True)
    before = {pid: rss_kib(pid) for pid in server.worker_pids()}
    result = bench.run(server, "mixed", "rss run (mixed)", seconds=plan.rss_s)
    after = {pid: rss_kib(pid) for pid in server.worker_pids()}
    growth = {pid: after[pid] / kib - 1 for pid, kib in before.items() if pid in after}
    worst = round(max(growth.values(), default=0.0), 4)
    replaced = sorted(before) != sorted(after)
    print(f"  RSS KiB before {before}, after {after}: worst growth {worst:.1%}", flush=True)
    return {
        "seconds": plan.rss_s,
        "requests": result.requests,
        "errors": result.errors,
        "before_kib": {str(k): v for k, v in before.items()},
        "after_kib": {str(k): v for k, v in after.items()},
        "workers_replaced": replaced,
        "worst_growth": worst,
        "met": worst < RSS_GROWTH_LIMIT and not replaced,
    }


def _non_2xx_answers(service: Server) -> int:
    """Every answer the service itself counted that was not 2xx (wrk counts only >= 400)."""
    time.sleep(2 * FLUSH_SECONDS)  # until every worker has written its last counts
    return non_2xx_answers(metrics_text(service))


def _machine(
    wrk: Wrk,
    plan: Plan,
    load_before: tuple[float, float, float],
    pg_version: str,
    gunicorn: dict[str, Any],
    *,
    durable: bool,
) -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _lines("/proc/cpuinfo")
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        (int(ln.split()[1]) for ln in _lines("/proc/meminfo") if ln.startswith("MemTotal:")), 0
    )
    wrk_version = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True).stdout
    packages = (
        "flask",
        "werkzeug",
        "gunicorn",
        "sqlalchemy",
        "psycopg",
        "pydantic",
        "prometheus-client",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-wsgi",
        "opentelemetry-instrumentation-psycopg",
    )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        # What it should be: production's major (bench/servers.py, bench_bindir).
        "postgresql_in_production": production_postgres_major(),
        "postgresql_fsync": durable,
        "packages": {p: _version(p) for p in packages},
        "wrk": (wrk_version.splitlines() or ["unknown"])[0],
        "requests": CALLERS_DESCRIPTION,
        "gunicorn": gunicorn,
        "load": {
            "connections": wrk.connections,
            "wrk_threads": wrk.threads,
            "warmup_s": plan.warmup_s,
            "run_s": plan.run_s,
            "rounds": plan.rounds,
            "seed_rows": SEED_ROWS,
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "client_and_server_on_one_machine": True,
    }


def _print_report(report: dict[str, Any]) -> list[str]:
    """Print the table; return the failures that make the exit status non-zero."""
    cpu = report["cpu_us_per_request"]
    header = ("scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "ratio", "CPU us/req")
    machine = report["machine"]
    print(f"\nrequests: {machine['requests']}")
    print(f"PostgreSQL {machine['postgresql']} (production: {machine['postgresql_in_production']})")
    print("{:<20}{:>8}{:>8}{:>8}{:>8}{:>8}{:>7}{:>17}  target".format(*header))
    rows = {"reference (hello)": report["reference"] | {"ratio": 1.0}} | report["scenarios"]
    for name, row in rows.items():
        target = RATIO_TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f">= {target:.2f} " + ("ok" if row["ratio"] >= target else "MISSED")
        used = cpu.get(name.split(" ")[0], {})
        cpu_text = f"{used.get('server', 0):>6} + {used.get('database', 0):>4} db"
        print(
            f"{name:<20}{row['rps']:>8.0f}{row['p50_ms']:>8.2f}{row['p95_ms']:>8.2f}"
            f"{row['p99_ms']:>8.2f}{row['errors']:>8}{row['ratio']:>7.2f}{cpu_text:>17}  {verdict}"
        )
    print()
    for key, label in (
        ("get_item_at_70_percent", "production settings"),
        ("get_item_at_70_percent_without_recycling", "GUNICORN_MAX_REQUESTS=0"),
    ):
        o = report[key]
        print(
            f"GET by id, open loop at {o['rate']:.0f} req/s (70% of {o['peak_rps']:.0f}), "
            f"{label}: p50 {o['p50_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms, "
            f"max {o['max_ms']:.1f} ms (p99 target <= {P99_TARGET_MS:.0f}: {_verdict(o['met'])})"
        )
    for name, m in report["metrics_cost"].items():
        print(
            f"/metrics on vs off, {name}: {m['cost_from_cpu']:.1%} more CPU per request, "
            f"{m['cost']:.1%} less throughput (target < {METRICS_COST_LIMIT:.0%}: "
            f"{_verdict(m['met'])}); throughput cost per round {m['rounds']}"
        )
    for name, a in report["auth_cost"].items():
        print(
            f"access control on vs off, {name} (one reused token): {a['off']['rps']:.0f} req/s "
            f"off, {report['scenarios'][name]['rps']:.0f} on; {a['cost_from_cpu']:.1%} more "
            f"CPU per request, {a['cost']:.1%} less throughput (target < {AUTH_COST_LIMIT:.0%}: "
            f"{_verdict(a['met'])}); throughput cost per round {a['rounds']}"
        )
    for key, t in report["tracing_cost"].items():
        print(
            f"tracing, {key}: {t['rps']:.0f} req/s against {t['off_rps']:.0f} with tracing off;"
            f" {t['cost_from_cpu']:.1%} more CPU per request, {t['cost']:.1%} less throughput;"
            f" throughput cost per round {t['rounds']}"
        )
    print(collector_report_lines(report["tracing_collector_failures"]))
    r = report["worker_rss"]
    print(
        f"worker RSS over {r['seconds']:.0f} s of mixed load: worst growth {r['worst_growth']:.1%}"
        f" (target < {RSS_GROWTH_LIMIT:.0%}: {_verdict(r['met'])})"
    )
    print_comparisons(report)
    print(f"ratios per round: {report['rounds']}")
    return [f"{what}: {count} failed requests" for what, count in report["errors"].items() if count]


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds per scenario, one round")
    p.add_argument("--duration", type=float, help="seconds per measured run")
    p.add_argument("--rounds", type=int, help="interleaved rounds")
    p.add_argument("--rss-duration", type=float, help="seconds of the RSS run")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (client CPU)")
    p.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL with fsync on (the default, like the tests, turns it off)",
    )
    p.add_argument("--output", default=str(RESULTS), help="where to write the JSON results")
    return p


def _lines(path: str) -> Iterator[str]:
    with contextlib.suppress(OSError), open(path) as f:
        yield from f


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
