"""Drive one scenario with wrk (keep-alive, fixed duration) and read back its summary.

The scenario's Lua script is bench/wrk/callers.lua (who each request acts for),
bench/wrk/common.lua and bench/wrk/<scenario>.lua; common.lua's `done` hook prints one
JSON line with the counts and latency percentiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.dataset import Dataset
from bench.servers import BenchCaller
from tools.prereq import find_tool

SCRIPTS = Path(__file__).resolve().parent / "wrk"
RESULT_MARKER = "BENCH_RESULT "
LATENCIES_MARKER = "BENCH_LATENCIES "  # open loops only: every latency, sorted, in us
INSTALL_HINT = "install it with `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`"


class WrkMissingError(RuntimeError):
    pass


def wrk_path() -> str:
    path = find_tool("wrk", "WRK")
    if path is None:
        raise WrkMissingError(
            f"wrk, the load generator, was not found: {INSTALL_HINT}, or set WRK=/path/to/wrk."
        )
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    socket_errors: int  # connect, read, write and timeout errors
    status_errors: int  # responses with status >= 400 (wrk's own count)
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    error_kinds: dict[str, int]
    latencies_us: tuple[int, ...] = ()  # open loops only, sorted

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.socket_errors + self.status_errors


@dataclass(frozen=True)
class Wrk:
    """How load is applied: the same for every target, so rounds compare like with like."""

    connections: int = 16
    threads: int = 1
    timeout_s: int = 2

    def run(
        self, url: str, script: str, seconds: float, *, nonce: str, dataset: Dataset,
        callers: Sequence[BenchCaller] = (),
    ) -> WrkResult:  # fmt: skip
        """Load `url` as fast as it answers with bench/wrk/<script>.lua (closed loop), the
        requests taking turns among `callers` (their tokens and rows in `dataset`)."""
        lua = _read("callers.lua", "common.lua", f"{script}.lua")
        args = [nonce, str(dataset.items), str(dataset.tags)]
        return self._wrk(lua, url, seconds, self.threads, args, callers)

    def open_loop(
        self, url: str, rate: float, seconds: float, *, nonce: str, dataset: Dataset,
        callers: Sequence[BenchCaller] = (),
    ) -> WrkResult:  # fmt: skip
        """GET by id at a fixed `rate`, latency from each request's due time (open loop).

        One wrk thread per connection, which is what lets bench/wrk/open_loop.lua pair each
        response with its due time.
        """
        lua = _read("callers.lua", "open_loop.lua")
        args = [nonce, str(dataset.items), str(rate), str(self.connections)]
        result = self._wrk(lua, url, seconds, self.connections, args, callers)
        if len(result.latencies_us) != result.requests:  # a pooled p99 would be wrong
            raise RuntimeError(
                f"wrk's open loop reported {result.requests} requests but "
                f"{len(result.latencies_us)} latencies (its {LATENCIES_MARKER.strip()} line)"
            )
        return result

    def _wrk(
        self, lua: str, url: str, seconds: float, threads: int, args: list[str],
        callers: Sequence[BenchCaller],
    ) -> WrkResult:  # fmt: skip
        with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="wrk-") as script:
            script.write(lua)
            script.flush()
            argv = [
                wrk_path(),
                f"--threads={threads}",
                f"--connections={self.connections}",
                f"--duration={max(1, round(seconds))}s",
                f"--timeout={self.timeout_s}s",
                f"--script={script.name}",
                url,
                "--",
                *args,
            ]
            # In the environment, not on the command line: `ps` would show the tokens there.
            env = {**os.environ, "BENCH_CALLERS": " ".join(c.wrk_spec() for c in callers)}
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=seconds + 60, env=env
            )
        return parse(done.stdout, done.stderr, done.returncode)


def _read(*scripts: str) -> str:
    return "".join((SCRIPTS / name).read_text() for name in scripts)


def parse(stdout: str, stderr: str, returncode: int) -> WrkResult:
    lines = stdout.splitlines()  # once: the latencies' line may hold tens of thousands
    line = next((ln for ln in lines if ln.startswith(RESULT_MARKER)), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {returncode}):\n{stdout}\n{stderr}")
    raw = json.loads(line[len(RESULT_MARKER) :])
    latencies = next((ln for ln in lines if ln.startswith(LATENCIES_MARKER)), "")
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        status_errors=raw["status"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        error_kinds={
            k: raw[k] for k in ("connect", "read", "write", "timeout", "status") if raw[k]
        },
        latencies_us=tuple(int(v) for v in latencies[len(LATENCIES_MARKER) :].split(",") if v),
    )
