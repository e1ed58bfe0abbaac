"""Requests flowing continuously in the background, each outcome recorded.

The zero-downtime test runs this while `helm upgrade` replaces the pods: every request
that does not get the expected status (connection reset, 502 from the ingress, timeout)
is a failure, and the version each response came from shows when the new code took over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import requests

Send = Callable[[requests.Session], requests.Response]
VersionOf = Callable[[requests.Response], str | None]


@dataclass(frozen=True)
class Outcome:
    started_at: float  # seconds since the loop started
    duration: float
    status: int | None
    error: str | None  # None when the request succeeded
    version: str | None
    error_kind: str | None = None  # "HTTP 502", "ConnectionError"...: what failures group by

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class VersionSpan:
    version: str | None
    count: int
    first_at: float
    last_at: float


@dataclass
class LoopReport:
    outcomes: list[Outcome]
    marks: list[tuple[float, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def versions(self) -> list[VersionSpan]:
        """Each version served, in order of first appearance, with when it was served."""
        spans: dict[str | None, VersionSpan] = {}
        for o in sorted(self.outcomes, key=lambda o: o.started_at):
            if not o.ok:
                continue
            span = spans.get(o.version)
            if span is None:
                spans[o.version] = VersionSpan(o.version, 1, o.started_at, o.started_at)
            else:
                spans[o.version] = VersionSpan(
                    o.version, span.count + 1, span.first_at, o.started_at
                )
        return list(spans.values())

    def count_between(self, start: float, end: float) -> int:
        """Requests started in [start, end) seconds into the loop, failed or not."""
        return sum(1 for o in self.outcomes if start <= o.started_at < end)

    def last_versions(self, count: int) -> list[str | None]:
        ordered = sorted((o for o in self.outcomes if o.ok), key=lambda o: o.started_at)
        return [o.version for o in ordered[-count:]]

    def summary(self) -> str:
        lines = [f"{self.total} requests, {len(self.failures)} failed"]
        by_kind: dict[str, list[Outcome]] = {}
        for o in self.failures:
            by_kind.setdefault(o.error_kind or "?", []).append(o)
        for kind, items in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
            lines.append(
                f"  {kind} x{len(items)} ({items[0].started_at:.1f}s-{items[-1].started_at:.1f}s),"
                f" e.g. {items[0].error}"
            )
        for span in self.versions():
            lines.append(
                f"  served version {span.version!r} x{span.count} "
                f"({span.first_at:.1f}s-{span.last_at:.1f}s)"
            )
        for at, label in self.marks:
            lines.append(f"  at {at:.1f}s: {label}")
        return "\n".join(lines)


class RequestLoop:
    """`workers` threads, each with its own Session, calling `send` until stopped."""

    def __init__(
        self,
        send: Send,
        *,
        session_factory: Callable[[], requests.Session] = requests.Session,
        version_of: VersionOf = lambda response: None,
        expected_status: Collection[int] = (200,),
        workers: int = 2,
        pause: float = 0.02,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._send = send
        self._session_factory = session_factory
        self._version_of = version_of
        self._expected_status = expected_status
        self._workers = workers
        self._pause = pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._marks: list[tuple[float, str]] = []
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0

    def __enter__(self) -> RequestLoop:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the request loop is already running")
        self._started_at = time.monotonic()
        self._threads = [
            threading.Thread(target=self._work, name=f"request-loop-{n}", daemon=True)
            for n in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> LoopReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.report()

    def elapsed(self) -> float:
        return time.monotonic() - self._started_at

    def mark(self, label: str) -> None:
        """Note an event (e.g. "helm upgrade returned") on the loop's timeline."""
        with self._lock:
            self._marks.append((self.elapsed(), label))

    def report(self) -> LoopReport:
        with self._lock:
            return LoopReport(list(self._outcomes), list(self._marks))

    def count_since(self, seconds_into_loop: float) -> int:
        with self._lock:
            return sum(1 for o in self._outcomes if o.started_at >= seconds_into_loop)

    def _work(self) -> None:
        session = self._session_factory()
        try:
            while not self._stop.is_set():
                self._record(self._one(session))
                self._stop.wait(self._pause)
        finally:
            session.close()

    def _one(self, session: requests.Session) -> Outcome:
        started = time.monotonic()
        status: int | None = None
        version: str | None = None
        error: str | None = None
        kind: str | None = None
        try:
            response = self._send(session)
            status = response.status_code
            if status not in self._expected_status:
                kind, error = f"HTTP {status}", _short(repr(response.text))
            else:
                try:
                    version = self._version_of(response)
                except Exception as exc:  # an unreadable body is a failure too
                    kind, error = "unreadable response", f"{type(exc).__name__}: {_short(exc)}"
        except requests.RequestException as exc:
            kind, error = type(exc).__name__, _short(exc)
        return Outcome(
            started_at=started - self._started_at,
            duration=time.monotonic() - started,
            status=status,
            error=error,
            version=version,
            error_kind=kind,
        )

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcomes.append(outcome)


def _short(value: object, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
