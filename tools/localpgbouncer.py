"""A PgBouncer in transaction pooling mode on a loopback port, for tests: what
CloudNativePG's `Pooler` (type rw, poolMode transaction) is in front of its `-rw` Service.

Debian's `pgbouncer` (1.18) has no prepared-statement support, so the service runs
through it with DB_PREPARED_STATEMENTS=false. PgBouncer refuses to run as root: as root
it runs as the `postgres` user, as the test servers do (tools/localpg.py).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.localpg import free_port

INSTALL = "apt-get install pgbouncer"


def find_pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


@dataclass
class LocalPgBouncer:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def pgbouncer(
    binary: str, directory: Path, server_port: int, database: str, user: str, password: str
) -> Iterator[LocalPgBouncer]:
    """PgBouncer on a free port, pooling `database` on 127.0.0.1:`server_port` for `user`.

    Configured as CloudNativePG configures its Pooler where it matters here: it ignores the
    `options` startup parameter (CloudNativePG's default `ignore_startup_parameters`),
    so a setting sent that way would be silently lost, not refused.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (directory / "userlist.txt").write_text(f'"{user}" "{password}"\n')
    (directory / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host=127.0.0.1 port={server_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 100
ignore_startup_parameters = extra_float_digits,options
; After a failed server connection (a failover), try again after 1 s, not 15.
server_login_retry = 1
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
    )
    argv = [binary, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        for parent in directory.parents:  # it must reach its files through every parent
            if parent != Path("/"):
                parent.chmod(parent.stat().st_mode | 0o001)
        argv = ["runuser", "-u", "postgres", "--", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = LocalPgBouncer(directory, port, process)
    try:
        _wait_until_listening(bouncer)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_listening(bouncer: LocalPgBouncer, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({bouncer.process.returncode}):\n{bouncer.log()}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", bouncer.port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"pgbouncer did not listen in {timeout} s:\n{bouncer.log()}")
