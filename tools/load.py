"""A small, bounded HTTP load loop with exact error accounting, for reliability tests.

Each request opens its own connection (as a client behind a Kubernetes Service would
when the server does not keep connections alive), so "refused" (never accepted) can be
told apart from "broken" (accepted, then failed without a complete response).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Request = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body


@dataclass
class Result:
    started: float
    seconds: float
    method: str
    path: str
    status: int | None  # None: no HTTP response
    error: str | None = None  # "refused" or "broken: <reason>"
    body: Any = None


@dataclass
class LoadReport:
    results: list[Result] = field(default_factory=list)

    @property
    def statuses(self) -> Counter[int | str]:
        return Counter(r.status if r.status is not None else r.error.split(":")[0]  # type: ignore[union-attr]
                       for r in self.results)  # fmt: skip

    def where(self, predicate: Callable[[Result], bool]) -> list[Result]:
        return [r for r in self.results if predicate(r)]

    @property
    def refused(self) -> list[Result]:
        return self.where(lambda r: r.error == "refused")

    @property
    def broken(self) -> list[Result]:
        return self.where(lambda r: r.error is not None and r.error != "refused")

    def acknowledged_writes(self) -> list[dict[str, Any]]:
        """Bodies of the POSTs answered 201."""
        return [r.body for r in self.results if r.method == "POST" and r.status == 201]


def send(host: str, port: int, request: Request, timeout: float) -> Result:
    method, path, body = request
    started = time.monotonic()
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except ConnectionRefusedError:
            return Result(started, time.monotonic() - started, method, path, None, "refused")
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        parsed = (
            json.loads(raw) if raw and "json" in response.getheader("Content-Type", "") else None
        )
        return Result(
            started, time.monotonic() - started, method, path, response.status, None, parsed
        )
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
        reason = f"broken: {type(exc).__name__}"
        return Result(started, time.monotonic() - started, method, path, None, reason)
    finally:
        conn.close()


class LoadLoop:
    """`threads` clients sending `next_request(n)` until stopped, `seconds` pass or
    `max_requests` are sent: always bounded, always on loopback."""

    def __init__(
        self,
        port: int,
        next_request: Callable[[int], Request],
        *,
        threads: int = 4,
        seconds: float = 60.0,
        max_requests: int = 200_000,
        timeout: float = 10.0,
        host: str = "127.0.0.1",
        pause: float = 0.0,
    ) -> None:
        self.host, self.port, self.next_request = host, port, next_request
        self.threads, self.seconds, self.max_requests = threads, seconds, max_requests
        self.timeout, self.pause = timeout, pause
        self.report = LoadReport()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            n = next(self._counter)
            if n >= self.max_requests:
                return
            result = send(self.host, self.port, self.next_request(n), self.timeout)
            with self._lock:
                self.report.results.append(result)
            if self.pause or result.error == "refused":
                time.sleep(self.pause or 0.01)  # do not spin on a closed port

    def __enter__(self) -> LoadLoop:
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadReport:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)
        return self.report

    def sent(self) -> int:
        with self._lock:
            return len(self.report.results)


def mixed_requests(
    prefix: str, ids: Sequence[int] = range(1, 51), read_ratio: float = 0.9
) -> Callable[[int], Request]:
    """90/10 reads/writes by default: reads of `ids` and of the first page; writes use
    unique names so none conflict."""
    every = max(1, round(1 / (1 - read_ratio))) if read_ratio < 1 else 0

    def next_request(n: int) -> Request:
        if every and n % every == 0:
            return ("POST", "/api/v1/items", {"name": f"{prefix}-{n}", "description": "load"})
        if n % 3 == 0:
            return ("GET", "/api/v1/items?limit=20", None)
        return ("GET", f"/api/v1/items/{ids[n % len(ids)]}", None)

    return next_request


def seed_items(port: int, prefix: str, count: int = 50, host: str = "127.0.0.1") -> list[int]:
    """Create `count` items and return their ids, so reads in a load hit real rows."""
    ids = []
    for i in range(count):
        result = send(host, port, ("POST", "/api/v1/items", {"name": f"{prefix}-seed-{i}"}), 10)
        assert result.status == 201, result
        ids.append(int(result.body["id"]))
    return ids
