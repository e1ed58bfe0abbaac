"""The wrk scenarios (bench/wrk/*.lua) against the real service and the peer, as `make
bench` runs them: every request succeeds, and each scenario asks for what it says."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench import collector
from bench.comparisons import peer_server
from bench.dataset import SLOT_OWNERS
from bench.measure import ALL_SCENARIOS
from bench.servers import BENCH_CALLERS, BenchCaller, Database, Server, server_env, start_server
from bench.wrk import Wrk, WrkResult
from tools.prereq import require_tool

pytestmark = pytest.mark.slow

API_SCENARIOS = [s for s in ALL_SCENARIOS if s != "livez"]


@pytest.fixture(scope="module")
def wrk() -> Wrk:
    require_tool("wrk", provided_by="apt-get install wrk", env_var="WRK")
    return Wrk(connections=2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-scripts")


def warmed(wrk: Wrk, server: Server) -> Server:
    """The server after a second of requests, as `make bench` warms up before it measures:
    up means /livez answers; the workers' first requests still open their connections and
    fetch the token keys, which on a loaded host took longer than a 1 s run (none done)."""
    assert server.database is not None
    wrk.run(server.base_url + "/", "get_item", 1, nonce=uuid.uuid4().hex[:12],
            dataset=server.database.dataset, callers=server.callers)  # fmt: skip
    return server


@pytest.fixture(scope="module")
def service(wrk: Wrk, seeded: Database, workdir: Path) -> Iterator[Server]:
    env = server_env(seeded.url, workdir, reference=False)
    with start_server("service", env, workdir, database=seeded) as server:
        yield warmed(wrk, server)


@pytest.fixture(scope="module")
def peer(wrk: Wrk, seeded: Database, workdir: Path) -> Iterator[Server]:
    with peer_server(seeded, workdir) as server:
        yield warmed(wrk, server)


def load(wrk: Wrk, server: Server, scenario: str, nonce: str) -> WrkResult:
    assert server.database is not None
    dataset = server.database.dataset
    result = wrk.run(
        server.base_url + "/", scenario, 1, nonce=nonce, dataset=dataset, callers=server.callers
    )
    assert result.requests > 0
    assert result.errors == 0, result.error_kinds
    return result


def access_lines(server: Server) -> list[dict[str, object]]:
    lines = server.log_path.read_text().splitlines()
    return [line for line in map(json.loads, lines) if line.get("method")]


CALLERS = {caller.owner: caller for caller in BENCH_CALLERS}


def reaches(caller: BenchCaller, row_id: int) -> bool:
    return caller.admin or SLOT_OWNERS[(row_id - 1) % 10] == caller.owner


@pytest.mark.parametrize("scenario", API_SCENARIOS)
def test_every_scenario_succeeds_on_the_service(wrk: Wrk, service: Server, scenario: str) -> None:
    load(wrk, service, scenario, uuid.uuid4().hex[:12])


@pytest.mark.parametrize("scenario", API_SCENARIOS)
def test_every_scenario_succeeds_on_the_peer(wrk: Wrk, peer: Server, scenario: str) -> None:
    load(wrk, peer, scenario, uuid.uuid4().hex[:12])


def test_gets_take_turns_and_ask_only_for_items_their_caller_reaches(
    wrk: Wrk, service: Server, seeded: Database
) -> None:
    """Two owners and an admin (issue 25), each asking for an item it reaches: its owner's,
    or any for the admin (items:admin)."""
    before = len(access_lines(service))
    load(wrk, service, "get_item", "gets")
    lines = access_lines(service)[before:]
    paths = [str(line["path"]) for line in lines]
    assert lines and all(path.startswith("/api/v1/items/") for path in paths)
    for line, path in zip(lines, paths, strict=True):
        item_id = int(path.rsplit("/", 1)[1])
        assert reaches(CALLERS[str(line["sub"])], item_id) and item_id <= seeded.dataset.items
    assert {line["sub"] for line in lines} == set(CALLERS)


def test_a_post_with_tags_links_five_of_its_callers_own_tags(
    wrk: Wrk, service: Server, seeded: Database
) -> None:
    nonce = uuid.uuid4().hex[:12]
    result = load(wrk, service, "post_item_tags", nonce)
    with psycopg.connect(seeded.url) as conn:
        created = conn.execute(
            """SELECT items.owner, array_agg(tag_id), array_agg(tags.owner)
               FROM items JOIN item_tags ON item_id = items.id JOIN tags ON tags.id = tag_id
               WHERE items.name LIKE %(prefix)s GROUP BY items.id""",
            {"prefix": f"bench-{nonce}-%"},
        ).fetchall()
    # Requests still in flight when wrk stops are not in its count, but may be done.
    assert result.requests <= len(created) <= result.requests + wrk.connections
    for owner, tag_ids, tag_owners in created:
        assert len(set(tag_ids)) == 5 and all(t > 10 for t in tag_ids)
        assert set(tag_owners) == {owner}
    assert {owner for owner, _, _ in created} == set(CALLERS)


def test_an_open_loop_reports_every_latency_sorted_beside_its_percentiles(
    wrk: Wrk, service: Server, seeded: Database
) -> None:
    """bench/collector.py pools the latencies of several runs to take one p99 over them."""
    result = wrk.open_loop(
        service.base_url + "/", 200, 1, nonce="open-loop", dataset=seeded.dataset,
        callers=service.callers,
    )  # fmt: skip
    latencies = result.latencies_us
    assert result.errors == 0 and len(latencies) == result.requests > 100
    # wrk waits whole milliseconds, so a request may go (and come back) just before it is due
    assert list(latencies) == sorted(latencies) and latencies[0] > -1000
    assert result.p99_ms == collector.percentile(list(latencies), 99) / 1000
    assert result.max_ms == latencies[-1] / 1000
