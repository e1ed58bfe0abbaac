"""A primary and its streaming standby on this machine, for failover tests.

The standby is made as an operator (or CloudNativePG) makes one: `pg_basebackup -R -X
stream -C -S <slot>` from the running primary, started with a `cluster_name` that the
primary names in `synchronous_standby_names`, so a commit is acknowledged only once the
standby has it. Promotion is `pg_ctl promote`. A `SwitchableAddress`
(tools/switchable_address.py) in front plays the Service that clients connect through.

The primary is a copy of a template data directory (initialised and migrated once per
test session), so each test gets fresh servers in a second or two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.localpg import SUPERUSER, LocalPostgres

STANDBY_NAME = "standby1"  # its cluster_name, its slot, and what the primary waits for
PG_BASEBACKUP_MISSING = (
    "no pg_basebackup next to the PostgreSQL server binaries (install Debian's `postgresql` "
    "package: apt-get install postgresql)"
)


def has_pg_basebackup(server: LocalPostgres) -> bool:
    return (server.bindir / "pg_basebackup").is_file()


def copy_data_dir(template: LocalPostgres, root: Path, name: str) -> LocalPostgres:
    """A server whose data is a copy of `template`'s (stopped) data directory."""
    data_dir = root / name
    # cp -a keeps the owner (the `postgres` user when we run as root) and the modes.
    subprocess.run(["cp", "-a", str(template.data_dir), str(data_dir)], check=True)
    (data_dir / "postmaster.pid").unlink(missing_ok=True)
    server = LocalPostgres(data_dir, durable=False, password=template.password)
    server.hand_to_owner()
    return server


@dataclass
class Replicated:
    """A primary, its standby (synchronous unless told otherwise), both running."""

    primary: LocalPostgres
    standby: LocalPostgres

    @classmethod
    def start(cls, template: LocalPostgres, root: Path, *, synchronous: bool = True) -> Replicated:
        primary = copy_data_dir(template, root, "primary")
        # Given at start, not in postgresql.auto.conf: the standby copies that file, and once
        # promoted it must not wait for a standby of its own that does not exist.
        primary.settings = {"synchronous_commit": "on"}
        if synchronous:
            primary.settings["synchronous_standby_names"] = STANDBY_NAME
        primary.start()
        standby = make_standby(primary, root / STANDBY_NAME, STANDBY_NAME)
        pair = cls(primary, standby)
        pair.wait_until_streaming(synchronous=synchronous)
        return pair

    def wait_until_streaming(self, *, synchronous: bool, timeout: float = 30.0) -> None:
        want = "sync" if synchronous else "async"
        deadline = time.monotonic() + timeout
        while True:
            row = query_one(
                self.primary,
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s "
                "AND state = 'streaming'",
                STANDBY_NAME,
            )
            if row is not None and row[0] == want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby is not streaming ({want}) after {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for server in (self.primary, self.standby):
            thaw(server)
            with contextlib.suppress(RuntimeError):
                server.stop(mode="immediate")


def make_standby(primary: LocalPostgres, data_dir: Path, name: str) -> LocalPostgres:
    """A streaming standby of `primary`, started: a base backup with `-R` (recovery
    settings and `standby.signal`), its own replication slot, `cluster_name` = `name`."""
    data_dir.mkdir(mode=0o700)
    standby = LocalPostgres(data_dir, durable=False, password=primary.password)
    standby.hand_to_owner(data_dir)
    standby.run_as_owner(
        [str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
         "-U", SUPERUSER, "-D", str(data_dir), "-R", "-X", "stream", "-C", "-S", name,
         "--no-sync"],
        env={"PGPASSWORD": primary.password},
    )  # fmt: skip
    standby.settings = {"cluster_name": name}
    return standby.start()


def promote(server: LocalPostgres) -> None:
    """End recovery: the standby becomes a primary (returns once it accepts writes)."""
    server.run_as_owner([str(server.bindir / "pg_ctl"), "promote", "-w", "-s", "-D",
                         str(server.data_dir)])  # fmt: skip


def in_recovery(server: LocalPostgres) -> bool:
    row = query_one(server, "SELECT pg_is_in_recovery()")
    return bool(row and row[0])


def server_pids(server: LocalPostgres) -> list[int]:
    """The postmaster and every process it started (backends, walsender, checkpointer...)."""
    pid_file = server.data_dir / "postmaster.pid"
    postmaster = int(pid_file.read_text().splitlines()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def freeze(server: LocalPostgres) -> None:
    """SIGSTOP the whole server: its kernel still accepts and ACKs TCP, nothing answers
    (a hung host, or a node lost without a reset, as the client sees it)."""
    for pid in server_pids(server):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)


def thaw(server: LocalPostgres) -> None:
    if not (server.data_dir / "postmaster.pid").exists():
        return
    with contextlib.suppress(OSError, ValueError):
        for pid in server_pids(server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def query_one(server: LocalPostgres, sql: str, *params: Any) -> tuple[Any, ...] | None:
    rows = query_all(server, sql, *params)
    return rows[0] if rows else None


def query_all(server: LocalPostgres, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql, params or None).fetchall()


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
