"""`python -m service ...`: clear one-line failures, usage for unknown commands, schema wait."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from service.store.schema_revision import code_head, latest_revision
from tests.conftest import migrate
from tools.localpg import free_port

pytestmark = pytest.mark.slow


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "APP_"))}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def only_line(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    entry: dict[str, str] = json.loads(lines[0])
    return entry


def test_unknown_command_prints_usage() -> None:
    result = run("bogus")
    assert result.returncode == 2
    assert "usage: python -m service" in result.stderr and "serve" in result.stderr


def test_migrate_without_database_url_is_one_clear_line() -> None:
    result = run("migrate")
    assert result.returncode == 2
    assert only_line(result)["message"].startswith("DATABASE_URL is not set")


def test_migrate_with_malformed_url_does_not_echo_it() -> None:
    result = run("migrate", DATABASE_URL="postgresql://u:hunter2@host:notaport/db")
    assert result.returncode == 2
    entry = only_line(result)
    assert entry["level"] == "CRITICAL" and "hunter2" not in json.dumps(entry)


def test_migrate_gives_up_on_an_unreachable_database_with_a_clear_error() -> None:
    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/app"
    result = run("migrate", "--timeout", "1", DATABASE_URL=url)
    assert result.returncode == 2
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["message"].startswith("cannot reach the database after 1s")
    assert "Traceback" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_migrate_applies_what_the_code_needs_and_contract_steps_only_when_asked(
    empty_database: str,
) -> None:
    result = run("migrate", DATABASE_URL=empty_database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"database is at {code_head()}" in result.stdout
    if code_head() != latest_revision():  # contract steps wait for `--contract`
        assert "migrate --contract" in result.stdout
    assert run("wait-for-schema", "--timeout", "5", DATABASE_URL=empty_database).returncode == 0
    contract = run("migrate", "--contract", DATABASE_URL=empty_database)
    assert contract.returncode == 0, contract.stdout + contract.stderr
    assert f"database is at {latest_revision()}" in contract.stdout
    again = run("migrate", DATABASE_URL=empty_database)
    assert "nothing to migrate" in again.stdout and " is past " in again.stdout
    assert run("wait-for-schema", "--timeout", "5", DATABASE_URL=empty_database).returncode == 0


def test_migrate_contracts_up_to_a_named_step_and_refuses_an_unknown_one(
    empty_database: str,
) -> None:
    """What the chart's `migration.contractThrough` passes: once applied, leaving it set
    is harmless (a later release's contract steps come after it)."""
    unknown = run("migrate", "--contract", "9999", DATABASE_URL=empty_database)
    assert unknown.returncode == 2
    assert only_line(unknown)["message"].startswith("--contract 9999: this code has no such")
    older = run("migrate", "--contract", "0001", DATABASE_URL=empty_database)
    assert f"database is at {code_head()}" in older.stdout  # an older one: no contract step
    named = run("migrate", "--contract", latest_revision(), DATABASE_URL=empty_database)
    assert named.returncode == 0, named.stdout + named.stderr
    assert f"database is at {latest_revision()}" in named.stdout


def test_migrate_needs_no_metrics_directory(empty_database: str, tmp_path: Path) -> None:
    # The image sets PROMETHEUS_MULTIPROC_DIR for the server; the migration Job runs the same
    # image on a read-only root filesystem with no metrics volume.
    result = run(
        "migrate", DATABASE_URL=empty_database, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "absent")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"database is at {code_head()}" in result.stdout


def test_wait_for_schema_times_out_with_a_pointer_to_the_job(empty_database: str) -> None:
    result = run("wait-for-schema", "--timeout", "1", DATABASE_URL=empty_database)
    assert result.returncode == 1
    assert "migration Job" in result.stdout and "no schema" in result.stdout
    migrate(empty_database)


def test_dev_refuses_outside_dev() -> None:
    result = run("dev", APP_ENV="prod", DATABASE_URL="postgresql://a:b@h/d?sslmode=require",
                 AUTH_ISSUER="https://login.example.com", AUTH_AUDIENCE="items-api")  # fmt: skip
    assert result.returncode == 2
    assert "APP_ENV=dev" in only_line(result)["message"]


def test_debug_in_prod_is_refused_before_serving() -> None:
    result = run("serve", APP_ENV="prod", DEBUG="true", DATABASE_URL="postgresql://a:b@h/d")
    assert result.returncode == 2
    assert only_line(result)["message"].startswith("DEBUG=true is refused")


def test_migrate_leaves_a_database_ahead_of_the_code_alone(empty_database: str) -> None:
    """`helm rollback` re-runs the previous release's Job against the newer schema."""
    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'from_a_newer_release'")
    result = run("migrate", DATABASE_URL=empty_database)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to migrate" in result.stdout and "ahead" in result.stdout
