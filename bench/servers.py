"""What the benchmark runs against: a seeded PostgreSQL, the service, the reference app.

The service is started exactly as the image starts it (`python -m service serve`, i.e.
gunicorn with service.runtime.gunicorn_conf) with production settings; the reference runs under
gunicorn with the same process model (bench/reference_gunicorn_conf.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tools.devtoken import SigningKey, jwks
from tools.localpg import free_port, throwaway_postgres
from tools.service_process import ROOT, stop_process

# Settings the benchmark sets itself, whatever the caller's environment holds.
OWNED_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "PORT",
    "APP_ENV",
    "LOG_LEVEL",
    "METRICS_ENABLED",
    "PROMETHEUS_MULTIPROC_DIR",
    "prometheus_multiproc_dir",
    "AUTH_ISSUER",
    "AUTH_AUDIENCE",
    "AUTH_JWKS_URL",
    "AUTH_JWKS_FILE",
    "AUTH_DISABLED",
)
# Access control as deployed, with keys from a file (nothing fetched during a run) and one
# token for the whole run: a client reusing its token, the case the verified-token cache
# serves. The issuer name is never contacted.
BENCH_ISSUER = "https://bench.invalid"
BENCH_AUDIENCE = "items-api"
BENCH_KEY = SigningKey.generate("bench")
# The rows have owners (issue 25), a third each by id: id % 3 = 1 is bench-a's, 2 is
# bench-b's, 0 is `unowned` (from before owners: what access control off reaches).
OWNERS = ("unowned", "bench-a", "bench-b")  # by id % 3
SEED_SQL = """
INSERT INTO items (owner, name, description)
SELECT (%(owners)s::text[])[n %% 3 + 1], 'seed-' || n,
       'Seeded item ' || n || ', one of the rows the load benchmark reads.'
FROM generate_series(1, %(rows)s) AS n
"""
# Every item carries two of its owner's tags, so the item scenarios return tags as real
# ones would: <p>tag-0 ... <p>tag-9 (each held by 10% of an owner's items; list_by_tag
# pages through <p>tag-3) and <p>tag-10 ... <p>tag-16, where <p> is the owner's prefix
# (u-, a-, b-). Names stay unique across owners, as the previous release's code (a
# `rev=` variant of bench.compare, on the same data) needs them.
SEED_TAGS_SQL = """
INSERT INTO tags (owner, name)
SELECT owner, left(replace(owner, 'bench-', ''), 1) || '-tag-' || n
FROM unnest(%(owners)s::text[]) AS owner, generate_series(0, 16) AS n;
INSERT INTO item_tags (item_id, tag_id)
SELECT items.id, tags.id FROM items JOIN tags ON tags.owner = items.owner
  AND tags.name IN (left(replace(items.owner, 'bench-', ''), 1) || '-tag-' || items.id / 3 %% 10,
               left(replace(items.owner, 'bench-', ''), 1) || '-tag-' || 10 + items.id / 3 %% 7)
"""


@dataclass(frozen=True)
class BenchCaller:
    """Who a benchmark request acts for, and so which seeded rows it asks for: its own
    (ids with id % 3 == residue), or every row (an admin: residue None)."""

    owner: str  # the token's sub
    residue: int | None
    tag_prefix: str  # its tags are <prefix>tag-N
    admin: bool = False
    with_token: bool = True

    def token(self) -> str:
        """Its bearer token, the same for the whole run (the client reuses it)."""
        return _token(self)

    def wrk_spec(self) -> str:
        """How bench/wrk/callers.lua reads it: residue:tag prefix:token."""
        residue = "*" if self.residue is None else str(self.residue)
        return f"{residue}:{self.tag_prefix}:{self.token() if self.with_token else '-'}"


@functools.cache
def _token(caller: BenchCaller) -> str:
    """Both scopes (and items:admin for an admin), valid for longer than any run."""
    scope = "items:read items:write" + (" items:admin" if caller.admin else "")
    return BENCH_KEY.mint(issuer=BENCH_ISSUER, audience=BENCH_AUDIENCE, subject=caller.owner,
                          scope=scope, lifetime=12 * 3600)  # fmt: skip


# Requests take turns: two owners and an admin, each caller's token reused (the case the
# verified-token cache serves). With access control off, every request is `anonymous`,
# which reaches the unowned third of the rows.
BENCH_CALLERS = (
    BenchCaller("bench-a", 1, "a-"),
    BenchCaller("bench-b", 2, "b-"),
    BenchCaller("bench-admin", None, "a-", admin=True),
)
WITHOUT_TOKENS = (BenchCaller("anonymous", 0, "u-", with_token=False),)
CALLERS_DESCRIPTION = (
    "tokens of two owners (bench-a, bench-b: a third of the rows each) and of an admin "
    "(items:admin: every row), in turn; with auth off, anonymous (the unowned third)"
)


@contextlib.contextmanager
def seeded_postgres(rows: int, *, durable: bool = False) -> Iterator[Database]:
    """A throwaway server (as the tests start it), migrated, with `rows` items."""
    with throwaway_postgres(durable=durable) as server:
        url = server.url()
        migrate = subprocess.run(
            [sys.executable, "-m", "service", "migrate"],
            env={**os.environ, "DATABASE_URL": url, "APP_ENV": "prod", "LOG_LEVEL": "WARNING"},
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}{migrate.stderr}")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEED_SQL, {"rows": rows, "owners": list(OWNERS)})
            for statement in SEED_TAGS_SQL.split(";"):
                conn.execute(statement, {"owners": list(OWNERS)})
            conn.execute("VACUUM ANALYZE items, tags, item_tags")
            version = conn.execute("SHOW server_version").fetchone()
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        yield Database(url, postmaster, version[0] if version else "unknown")


@dataclass(frozen=True)
class Database:
    url: str
    postmaster_pid: int
    version: str


@dataclass
class Server:
    """A gunicorn master we started; its workers are its child processes."""

    name: str
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    is_reference: bool = False
    auth_disabled: bool = False

    @property
    def callers(self) -> tuple[BenchCaller, ...]:
        """Who the requests to this server act for."""
        return WITHOUT_TOKENS if self.auth_disabled else BENCH_CALLERS

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def worker_pids(self) -> list[int]:
        return sorted(pid for pid in _all_pids() if _parent(pid) == self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_answering(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.base_url + path, timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout}s:\n{self.log_tail()}")


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by `root` and every child, reaped ones included.

    A reaped child's time is in its parent's cutime/cstime, so recycled gunicorn workers
    and finished PostgreSQL backends still count; live children are read directly.
    """
    ticks = _cpu_ticks(root, with_children=True)
    for pid in _all_pids():
        if _parent(pid) == root:
            ticks += _cpu_ticks(pid, with_children=True)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    return int(_status_field(pid, "VmRSS").split()[0])


@contextlib.contextmanager
def start_server(
    name: str, env: dict[str, str], workdir: Path, *, reference: bool = False, code: Path = ROOT
) -> Iterator[Server]:
    """Start the service (or the reference) with output to a file, as a container runtime
    keeps it; stop it after. `code` is the tree to run (another git revision, for A/B)."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    argv = _reference_argv(port) if reference else _service_argv()
    with log_path.open("w") as log:
        popen = subprocess.Popen(
            argv,
            env={**env, "PORT": str(port)},
            cwd=code,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    auth_off = env.get("AUTH_DISABLED", "").lower() == "true"
    server = Server(name, popen, port, log_path, is_reference=reference, auth_disabled=auth_off)
    try:
        server.wait_until_answering("/" if reference else "/livez")
        yield server
    finally:
        stop_process(popen, timeout=30)


def server_env(
    database_url: str, workdir: Path, *, reference: bool, **overrides: str
) -> dict[str, str]:
    """Production settings (APP_ENV=prod, INFO logs, multiprocess metrics as in the image).

    GUNICORN_* and DB_* pass through from the caller's environment, so alternatives can be
    measured: `GUNICORN_THREADS=8 make bench`.
    """
    env = {k: v for k, v in os.environ.items() if k not in OWNED_VARIABLES}
    env |= {"DATABASE_URL": database_url, "APP_ENV": "prod", "LOG_LEVEL": "INFO"}
    # The reference reads the same settings (for the same process model) but records no
    # metrics, so it gets no metrics directory.
    if not reference:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=workdir)
        env |= bench_auth_env(workdir)
    else:
        # Its gunicorn config takes the service's (same process model), which refuses to
        # serve an open API outside dev; the reference has no access control either way.
        env["AUTH_DISABLED"] = "true"
    return env | overrides


def bench_auth_env(workdir: Path) -> dict[str, str]:
    """AUTH_* for a service that accepts the callers' tokens (its public key in a JWKS file)."""
    path = workdir / "bench-jwks.json"
    path.write_text(json.dumps(jwks(BENCH_KEY)))
    return {
        "AUTH_ISSUER": BENCH_ISSUER,
        "AUTH_AUDIENCE": BENCH_AUDIENCE,
        "AUTH_JWKS_FILE": str(path),
    }


def _service_argv() -> list[str]:
    # The port reaches the service through $PORT, as in the image.
    return [sys.executable, "-m", "service", "serve"]


def _reference_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:bench.reference_gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]


def service_env(database_url: str, workdir: Path, **overrides: str) -> dict[str, str]:
    """Production settings: APP_ENV=prod, INFO logs, multiprocess metrics as in the image."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="metrics-", dir=workdir))
    return {
        "DATABASE_URL": database_url,
        "APP_ENV": "prod",
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **overrides,
    }


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def _parent(pid: int) -> int | None:
    try:
        return int(_status_field(pid, "PPid"))
    except (OSError, ValueError):
        return None


def _cpu_ticks(pid: int, *, with_children: bool) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Fields after the command name, which may hold spaces: utime is the 12th.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0  # exited between listing and reading: its time moves to its parent
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return utime + stime + (cutime + cstime if with_children else 0)


def _status_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise ValueError(f"/proc/{pid}/status has no {field}")
