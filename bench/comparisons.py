"""Two comparisons `make bench` draws from its rounds (issue 26):

- **the peer**: the service against a Flask-SQLAlchemy app serving the same JSON
  (bench/peer_app.py), run in the same rounds on the same gunicorn process model and
  database; per round, the service's requests/s over the peer's. Target: at least 3x.
- **relative to GET by id**: the list page and the `?tag=` page against GET by id; per
  round, each scenario's ratio to its reference over GET's ratio to its reference (all
  measured in the same round). Target: at least 0.9.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.measure import Bench
from bench.servers import PEER_CONFIG, Database, Server, server_env, start_server

PEER_SCENARIOS = ("get_item", "list_page", "list_by_tag", "post_item", "mixed")
PEER_TARGET = 3.0
RELATIVE_TO_GET = ("list_page", "list_by_tag")
RELATIVE_TARGET = 0.90


def peer_key(scenario: str) -> str:
    return f"{scenario} (peer)"


@contextlib.contextmanager
def peer_server(database: Database, workdir: Path) -> Iterator[Server]:
    """The peer, on the service's database; the same settings as the reference (its gunicorn
    config is the reference's process model)."""
    env = server_env(database.url, workdir, reference=True)
    with start_server("peer", env, workdir, app_config=PEER_CONFIG, database=database) as server:
        # Its requests carry the bench callers' tokens, as the service's do (the peer reads
        # the owner and items:admin from them), not the auth-off twin's none.
        yield dataclasses.replace(server, auth_disabled=False)


def peer_figures(bench: Bench, per_round: dict[str, list[float]]) -> dict[str, Any]:
    """The service over the peer, per scenario: median and rounds, the peer's own figures."""
    figures = {}
    for scenario, ratios in per_round.items():
        peer = bench.runs[peer_key(scenario)]
        median = statistics.median(ratios)
        figures[scenario] = {
            "service_over_peer": round(median, 2),
            "rounds": [round(r, 2) for r in ratios],
            "peer": peer.summary()
            | {
                "server_us": round(peer.median("server_us")),
                "database_us": round(peer.median("database_us")),
            },
            "target": PEER_TARGET,
            "met": median >= PEER_TARGET,
        }
    return figures


def relative_figures(ratios: dict[str, list[float]]) -> dict[str, Any]:
    """The list pages over GET by id, each round's ratios divided by that round's GET's."""
    figures = {}
    for scenario in RELATIVE_TO_GET:
        if scenario not in ratios or "get_item" not in ratios:
            continue
        per_round = [s / g for s, g in zip(ratios[scenario], ratios["get_item"], strict=True)]
        median = statistics.median(per_round)
        figures[scenario] = {
            "over_get_item": round(median, 3),
            "rounds": [round(r, 3) for r in per_round],
            "target": RELATIVE_TARGET,
            "met": median >= RELATIVE_TARGET,
        }
    return figures


def print_comparisons(report: dict[str, Any]) -> None:
    for scenario, p in report.get("peer", {}).items():
        verdict = "ok" if p["met"] else "MISSED"
        peer = p["peer"]
        print(
            f"against the Flask-SQLAlchemy peer, {scenario}: {p['service_over_peer']:.2f}x "
            f"(peer {peer['rps']:.0f} req/s, CPU {peer['server_us']} + {peer['database_us']} db "
            f"us/req; target >= {PEER_TARGET:.0f}x: {verdict}); per round "
            f"{min(p['rounds']):.2f}-{max(p['rounds']):.2f}"
        )
    for scenario, r in report.get("relative_to_get", {}).items():
        verdict = "ok" if r["met"] else "MISSED"
        print(
            f"{scenario} against GET by id: {r['over_get_item']:.2f} (target >= "
            f"{RELATIVE_TARGET:.2f}: {verdict}); per round "
            f"{min(r['rounds']):.2f}-{max(r['rounds']):.2f}"
        )
