"""What clients saw during a failure, recorded Jepsen-style, and the checks on it.

Four writers create items with unique names and two readers read them back, each on a
new connection per request (as clients behind a Service), for as long as the test runs.
Every answer is kept: its start, its duration, its status and body. Afterwards every
write acknowledged with 201 is looked up on the database that survived.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from tools.load import LoadLoop, Result, mixed_requests

WRITERS, READERS = 4, 2
ANSWERS = {200, 201, 503}  # anything else, or no answer at all, is a failure
CODES_503 = {"database_unavailable", "commit_unconfirmed"}


class ClientHistory:
    def __init__(self, port: int, prefix: str, ids: Sequence[int], seconds: float = 120) -> None:
        # A client gives up after 15 s: longer than any deadline the tests set, so a
        # request the service leaves unanswered shows up as one.
        self.writes = LoadLoop(port, mixed_requests(prefix, ids, read_ratio=0.0),
                               threads=WRITERS, seconds=seconds, timeout=15)  # fmt: skip
        self.reads = LoadLoop(port, mixed_requests(prefix, ids, read_ratio=1.0),
                              threads=READERS, seconds=seconds, timeout=15)  # fmt: skip

    def __enter__(self) -> ClientHistory:
        self.writes.__enter__()
        self.reads.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.writes.stop()
        self.reads.stop()

    @property
    def results(self) -> list[Result]:
        return self.writes.report.results + self.reads.report.results

    def where(self, predicate: Callable[[Result], bool]) -> list[Result]:
        return [r for r in self.results if predicate(r)]

    def started_within(self, start: float, end: float) -> list[Result]:
        return self.where(lambda r: start <= r.started <= end)

    def inside(self, start: float, end: float) -> list[Result]:
        """Requests sent and answered between `start` and `end`."""
        return self.where(lambda r: start <= r.started and r.started + r.seconds < end)

    def answered_within(self, start: float, end: float) -> list[Result]:
        """Requests that were in flight at some point between `start` and `end`."""
        return self.where(lambda r: r.started <= end and r.started + r.seconds >= start)

    def acknowledged(self) -> dict[str, int]:
        """Name -> id of every write answered 201."""
        return {r.body["name"]: r.body["id"] for r in self.where(_created)}

    def lost(self, database_url: str) -> list[str]:
        """Acknowledged writes that the database does not hold (with the same id)."""
        acknowledged = self.acknowledged()
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            stored = dict(conn.execute("SELECT name, id FROM items").fetchall())
        return [name for name, item_id in acknowledged.items() if stored.get(name) != item_id]

    def first_write_back(self, after: float) -> float | None:
        """Seconds from `after` until a write started after it was answered 201."""
        done = [r.started + r.seconds for r in self.where(_created) if r.started >= after]
        return min(done) - after if done else None

    def read_p99(self, start: float, end: float) -> float:
        reads = [r.seconds for r in self.started_within(start, end) if r.method == "GET"]
        return statistics.quantiles(reads, n=100)[98] if len(reads) >= 2 else float("nan")

    def unexpected(self) -> list[Result]:
        """Answers no failure may produce: no answer, another status, another 503 code."""
        return self.where(
            lambda r: r.status not in ANSWERS or (r.status == 503 and code(r) not in CODES_503)
        )

    def tally(self, results: list[Result]) -> Counter[str]:
        return Counter(f"{r.status} {code(r)}" if r.status == 503 else str(r.status or r.error)
                       for r in results)  # fmt: skip


def code(result: Result) -> Any:
    body = result.body if isinstance(result.body, dict) else {}
    return body.get("error", {}).get("code")


def _created(result: Result) -> bool:
    return result.method == "POST" and result.status == 201
