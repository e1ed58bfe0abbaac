"""The primary changes, stops answering, or loses its synchronous standby, under load.

Real PostgreSQL servers of the test's own (a primary, its synchronous standby made with
`pg_basebackup -R`, promotion with `pg_ctl promote`) behind a switchable address that
plays the Kubernetes Service; the real service (gunicorn, 2 workers, prod settings)
under 4 writers and 2 readers whose every answer is recorded (tests/reliability/history.py).
Each test prints its figures: docs/reliability.md, "Failover", has them.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.reliability.history import ClientHistory, code
from tests.reliability.serving import DEADLINE, EXPIRED, WORKERS, serving, url_through
from tools.localpg import APP_DB, APP_USER, LocalPostgres
from tools.localpg_replication import Replicated, freeze, promote, query_all, thaw
from tools.localpgbouncer import pgbouncer
from tools.switchable_address import SwitchableAddress

pytestmark = pytest.mark.slow

BACK_WITHIN = 2.0  # writes back this soon after the new primary accepts connections


def assert_every_request_answered(history: ClientHistory, log: str) -> None:
    assert not history.unexpected(), history.tally(history.unexpected())
    assert "WORKER TIMEOUT" not in log  # gunicorn never ended a request


def assert_answered_within_the_deadline(history: ClientHistory, start: float, end: float) -> float:
    """Every request in flight between `start` and `end` answered within DEADLINE, as its
    client counts; the longest answer."""
    longest = max(r.seconds for r in history.answered_within(start, end))
    assert longest <= DEADLINE, f"a request took {longest:.2f} s"
    return longest


def assert_writes_back(history: ClientHistory, since: float, lost_on: str) -> float:
    """Writes succeed again within BACK_WITHIN of `since`, and none acknowledged is lost."""
    back = history.first_write_back(since)
    assert back is not None and back <= BACK_WITHIN, f"writes back after {back} s"
    late = history.where(lambda r: r.method == "POST" and r.started > since + BACK_WITHIN)
    assert late and all(r.status == 201 for r in late), history.tally(late)
    lost = history.lost(lost_on)
    assert not lost, f"{len(lost)} acknowledged writes lost: {lost[:5]}"
    return back


def test_a_lost_synchronous_standby_fails_writes_fast_and_keeps_reads_flowing(
    replicated: Replicated,
) -> None:
    """Commits wait for the standby, which is gone: statement_timeout does not cover that
    wait. Each worker's first write reaches the deadline and is answered 503
    commit_unconfirmed (PostgreSQL committed it locally, no standby confirmed it); the
    worker's breaker then fails writes fast, reads go on, and writes resume by themselves
    once the standby is back."""
    primary, standby = replicated.primary, replicated.standby
    with (
        SwitchableAddress(primary.port) as address,
        serving(url_through(address.port, primary)) as (service, ids),
        ClientHistory(service.port, "lost-standby", ids) as history,
    ):
        time.sleep(2)
        standby.stop(mode="immediate")
        lost_at = time.monotonic()
        time.sleep(2 * DEADLINE + 1)
        restarting_at = time.monotonic()
        standby.start()
        replicated.wait_until_streaming(synchronous=True)
        back_at = time.monotonic()
        time.sleep(2 * BACK_WITHIN)
    log = service.output()

    assert_every_request_answered(history, log)
    longest = assert_answered_within_the_deadline(history, lost_at, back_at)
    outage = history.answered_within(lost_at, back_at)
    writes = [r for r in history.inside(lost_at, restarting_at) if r.method == "POST"]
    assert writes and not [r for r in writes if r.status == 201], history.tally(writes)
    # The writes waiting when the standby went: committed locally, never acknowledged.
    unconfirmed = [r for r in outage if code(r) == "commit_unconfirmed"]
    assert unconfirmed, history.tally(outage)
    assert all("may or may not" in r.body["error"]["message"] for r in unconfirmed)
    # One deadline per worker, not one per write: the breaker failed the others fast.
    assert 1 <= log.count(EXPIRED) <= WORKERS, log.count(EXPIRED)
    reads = [r for r in history.inside(lost_at, back_at) if r.method == "GET"]
    assert reads and all(r.status == 200 for r in reads), history.tally(reads)
    back = assert_writes_back(history, back_at, primary.url())
    p99 = history.read_p99(lost_at, back_at)
    print(
        f"lost standby: {len(history.results)} requests, {len(history.acknowledged())} writes "
        f"acknowledged, 0 lost; during the {back_at - lost_at:.1f} s outage {len(writes)} writes "
        f"(none acknowledged; {len(unconfirmed)} commit_unconfirmed, the rest 503 at once) and "
        f"{len(reads)} reads (all 200, p99 {p99 * 1000:.0f} ms); longest answer {longest:.2f} s "
        f"(deadline {DEADLINE:.0f} s); first 201 {back:.2f} s after the standby streamed again"
    )


def test_a_frozen_primary_gets_every_request_answered_within_the_deadline(
    replicated: Replicated,
) -> None:
    """SIGSTOP on every process of the primary: its kernel still ACKs, so nothing in TCP
    notices, and a cancel request is never acted on. The watchdog shuts the socket down
    from our side; both sides of the breaker open; a probe closes them after the thaw."""
    primary = replicated.primary
    with (
        SwitchableAddress(primary.port) as address,
        serving(url_through(address.port, primary)) as (service, ids),
        ClientHistory(service.port, "frozen", ids) as history,
    ):
        time.sleep(2)
        freeze(primary)
        frozen_at = time.monotonic()
        time.sleep(2 * DEADLINE + 1)
        thaw(primary)
        thawed_at = time.monotonic()
        time.sleep(2 * BACK_WITHIN)
    log = service.output()

    assert_every_request_answered(history, log)
    longest = assert_answered_within_the_deadline(history, frozen_at, thawed_at)
    during = history.inside(frozen_at, thawed_at)
    assert during and all(r.status == 503 for r in during), history.tally(during)
    assert 1 <= log.count(EXPIRED) <= WORKERS, log.count(EXPIRED)
    assert "did not reply to the cancel" in log
    back = assert_writes_back(history, thawed_at, primary.url())
    print(
        f"frozen primary: {len(history.results)} requests, {len(history.acknowledged())} writes "
        f"acknowledged, 0 lost; {len(during)} answered 503 while frozen "
        f"({history.tally(during)}); longest answer {longest:.2f} s (deadline {DEADLINE:.0f} s); "
        f"first 201 {back:.2f} s after the thaw"
    )


@pytest.mark.parametrize("old_connections", ["reset", "abandoned"])
def test_an_address_pointing_at_a_standby_gives_quick_503s_and_leaves_no_connection_there(
    replicated: Replicated, old_connections: str
) -> None:
    """The Service points at a server in recovery for 6 s (a demoted primary). Connections
    are made only to a server that accepts writes, so reads and writes alike are 503 at
    once, no connection is left on the standby, and every request is answered.

    The connections the service had: `reset`, the old primary ended them; `abandoned`,
    they stay open and ACKed but nothing answers on them (its node went without a reset,
    seen through a proxy or NAT that stays up). That is how a request went unanswered
    before: its worker waited on such a connection until gunicorn killed it (SIGKILL at
    GUNICORN_TIMEOUT), with the request; tcp_user_timeout never fired, the proxy ACKing.
    Now the deadline ends that wait, and the breaker answers the rest at once."""
    primary, standby = replicated.primary, replicated.standby
    sessions_on_standby = []
    with (
        SwitchableAddress(primary.port) as address,
        serving(url_through(address.port, primary)) as (service, ids),
        ClientHistory(service.port, f"standby-address-{old_connections}", ids) as history,
    ):
        time.sleep(2)
        address.point_at(standby.port, cut=old_connections == "reset",
                         abandon=old_connections == "abandoned")  # fmt: skip
        moved_at = time.monotonic()
        while time.monotonic() < moved_at + 6:
            # A connection attempt the standby gets is refused (it accepts no writes) within
            # milliseconds: none may last.
            sessions_on_standby.append(service_sessions(standby, older_than=1.0))
            time.sleep(0.5)
        address.point_at(primary.port)
        back_at = time.monotonic()

        def left_from_before() -> list[str]:
            # Sessions begun before the address pointed back: what the service left there.
            # (One the address accepted an instant before the switch may still be starting
            # on the standby at the last look; it is refused like the others.)
            return service_sessions(standby, older_than=time.monotonic() - back_at)

        while time.monotonic() < back_at + 10 and left_from_before():
            time.sleep(0.2)
        left_on_standby = left_from_before()
        time.sleep(max(0.0, back_at + 2 * BACK_WITHIN - time.monotonic()))
    log = service.output()

    assert_every_request_answered(history, log)
    assert not any(sessions_on_standby), sessions_on_standby
    assert not left_on_standby, f"left on the standby after the switch back: {left_on_standby}"
    longest = assert_answered_within_the_deadline(history, moved_at, back_at)
    # Requests sent once the old connections were gone or given up on: 503, none waits.
    settled = moved_at + (DEADLINE if old_connections == "abandoned" else 0.0)
    during = history.inside(settled, back_at)
    assert during and all(r.status == 503 for r in during), history.tally(during)
    waits = log.count(EXPIRED)
    assert waits == 0 if old_connections == "reset" else 1 <= waits <= WORKERS, waits
    back = assert_writes_back(history, back_at, primary.url())
    print(
        f"address at a standby for {back_at - moved_at:.0f} s, old connections "
        f"{old_connections}: {len(history.results)} requests, {len(history.acknowledged())} "
        f"writes acknowledged, 0 lost; {history.tally(history.inside(moved_at, back_at))} "
        f"meanwhile, longest {longest * 1000:.0f} ms; 0 service sessions on the standby; "
        f"first 201 {back:.2f} s after the address pointed back"
    )


@pytest.mark.parametrize("via", ["direct", "pgbouncer"])
@pytest.mark.parametrize("how", ["crash", "switchover"])
def test_failover_loses_nothing_acknowledged_and_writes_come_back(
    replicated: Replicated, how: str, via: str, request: pytest.FixtureRequest, reachable_tmp: Path
) -> None:
    """crash: the primary stops at once (`pg_ctl stop -m immediate`); switchover: a fast
    shutdown, whose sessions end with 57P01. Then the standby is promoted and the address
    pointed at it. Through PgBouncer (transaction pooling, prepared statements off) too,
    which plays CloudNativePG's Pooler in front of the `-rw` Service."""
    primary, standby = replicated.primary, replicated.standby
    with contextlib.ExitStack() as stack:
        address = stack.enter_context(SwitchableAddress(primary.port))
        url, extra = url_through(address.port, primary), {}
        if via == "pgbouncer":
            binary = request.getfixturevalue("pgbouncer_binary")
            pooler = pgbouncer(
                binary,
                reachable_tmp / "pgbouncer",
                address.port,
                APP_DB,
                APP_USER,
                primary.password,
            )
            bouncer = stack.enter_context(pooler)
            url, extra = url_through(bouncer.port, primary), {"DB_PREPARED_STATEMENTS": "false"}
        service, ids = stack.enter_context(serving(url, **extra))
        with ClientHistory(service.port, f"{how}-{via}", ids) as history:
            time.sleep(2)
            primary.stop(mode="immediate" if how == "crash" else "fast")
            down_at = time.monotonic()
            promote(standby)
            address.point_at(standby.port)
            switched_at = time.monotonic()
            time.sleep(2 * BACK_WITHIN)
    log = service.output()

    assert_every_request_answered(history, log)
    during = history.inside(down_at, switched_at)
    assert all(r.status == 503 for r in during), history.tally(during)
    longest = assert_answered_within_the_deadline(history, down_at, switched_at)
    if how == "switchover":
        assert "terminating connection due to administrator command" in server_log(primary)
    back = assert_writes_back(history, switched_at, standby.url())
    print(
        f"{how} ({via}): {len(history.results)} requests, {len(history.acknowledged())} writes "
        f"acknowledged, 0 lost; {history.tally(history.answered_within(down_at, switched_at))} "
        f"during the {switched_at - down_at:.2f} s switch; longest answer {longest * 1000:.0f} ms;"
        f" first 201 {back:.2f} s after the new primary took connections"
    )


def service_sessions(server: LocalPostgres, older_than: float = 0.0) -> list[str]:
    """The service's sessions on `server` that have lasted `older_than` seconds, each said
    with what a failure needs to tell a session left open from one still starting."""
    rows = query_all(
        server,
        "SELECT pid, extract(epoch FROM now() - backend_start), state, wait_event "
        "FROM pg_stat_activity WHERE application_name = 'service' "
        "AND backend_start < now() - make_interval(secs => %s)",
        older_than,
    )
    return [f"pid {pid}, {age:.1f} s old, {state or 'starting'}, waiting on {event or '-'}"
            for pid, age, state, event in rows]  # fmt: skip


def server_log(server: LocalPostgres) -> str:
    assert server.log_file is not None
    return server.log_file.read_text(errors="replace")
