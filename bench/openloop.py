"""An open-loop client: requests start on a fixed schedule whatever the server does.

wrk is closed-loop (a connection sends its next request only after the previous answer),
so a slow server is offered less load and its stalls hide ("coordinated omission"); wrk2,
which fixes that, is not packaged by Debian. Here request i is due at start + i/rate, and
its latency is measured from that due time, not from when a connection was free to send
it. Connections are kept alive (reopened when the server closes them); the client runs on
asyncio in one thread, which at the rates used here costs a fraction of one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float  # offered
    achieved_rps: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def run_open_loop(
    host: str, port: int, *, rate: float, seconds: float, connections: int, max_id: int
) -> OpenLoopResult:
    return asyncio.run(_run(host, port, rate, seconds, connections, max_id))


async def _run(
    host: str, port: int, rate: float, seconds: float, connections: int, max_id: int
) -> OpenLoopResult:
    loop = asyncio.get_running_loop()
    due: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = loop.time() + 0.1

    async def schedule() -> None:
        for i in range(total):
            when = start + i / rate
            if (wait := when - loop.time()) > 0:
                await asyncio.sleep(wait)
            due.put_nowait(when)
        for _ in range(connections):
            due.put_nowait(None)

    async def connection() -> None:
        nonlocal errors
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (when := await due.get()) is not None:
            request = (
                f"GET /api/v1/items/{random.randint(1, max_id)} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n\r\n"
            ).encode()
            try:
                if stream is None:
                    stream = await asyncio.open_connection(host, port)
                reader, writer = stream
                writer.write(request)
                status, keep_alive = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                stream = await _close(stream)
                continue
            latencies.append(loop.time() - when)
            if not 200 <= status < 300:
                errors += 1
            if not keep_alive:
                stream = await _close(stream)
        await _close(stream)

    began = loop.time()
    await asyncio.gather(schedule(), *(connection() for _ in range(connections)))
    elapsed = loop.time() - began
    latencies.sort()
    return OpenLoopResult(
        rate=rate,
        achieved_rps=len(latencies) / elapsed if elapsed else 0.0,
        requests=len(latencies),
        errors=errors,
        p50_ms=_percentile(latencies, 50) * 1000,
        p95_ms=_percentile(latencies, 95) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
    )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = headers.get("connection", "").lower() != "close"
    return status, keep_alive


async def _close(
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> None:
    if stream is not None:
        stream[1].close()
        with contextlib.suppress(OSError):
            await stream[1].wait_closed()


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))
    return sorted_values[index]
