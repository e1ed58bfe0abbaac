"""A migration behind a long transaction gives up its lock wait after
MIGRATION_LOCK_TIMEOUT_MS, so the API's queries queued behind it wait no longer than
that; `migrate` retries with backoff, then fails naming the session holding the lock."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config

from service.__main__ import main
from service.store import schema_revision
from service.store.schema_revision import ROOT, latest_revision
from tests.conftest import migrate
from tools.load import LoadLoop, mixed_requests, seed_items
from tools.service_process import running_service

pytestmark = pytest.mark.slow
LOCK_TIMEOUT_MS = 1000
ATTEMPTS = 3

NEEDS_AN_EXCLUSIVE_LOCK = '''
"""Add a column: ACCESS EXCLUSIVE on items."""
import sqlalchemy as sa
from alembic import op

revision = "9998_colour"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("colour", sa.String(20)))


def downgrade() -> None:
    op.drop_column("items", "colour")
'''


@pytest.fixture
def pending_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_database: str) -> str:
    """The database at the chain's head, and one more revision for `migrate` to apply."""
    migrate(empty_database)
    scripts = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9998_colour.py").write_text(
        NEEDS_AN_EXCLUSIVE_LOCK.format(head=latest_revision())
    )

    def config() -> Config:
        cfg = Config(str(schema_revision.ALEMBIC_INI))
        cfg.set_main_option("script_location", str(scripts))
        return cfg

    monkeypatch.setattr(schema_revision, "alembic_config", config)
    monkeypatch.setenv("DATABASE_URL", empty_database)
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_MS", str(LOCK_TIMEOUT_MS))
    monkeypatch.setenv("MIGRATION_LOCK_ATTEMPTS", str(ATTEMPTS))
    return empty_database


def has_colour(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return bool(conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' "
            "AND column_name = 'colour'"
        ).fetchone())  # fmt: skip


def test_a_blocked_migration_never_queues_api_writes_longer_than_its_lock_timeout(
    pending_revision: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pending_revision
    env = {"DATABASE_URL": url, "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}
    with running_service(env) as service, psycopg.connect(url) as holder:
        ids = seed_items(service.port, "locks", count=10)
        holder.execute("SET application_name = 'long-writer'")
        holder.execute("UPDATE items SET description = 'held' WHERE id = %s", (ids[0],))
        holder_pid = holder.info.backend_pid
        outcome: list[int] = []
        with LoadLoop(service.port, mixed_requests("locks", ids[1:], read_ratio=0.5),
                      threads=4, seconds=60) as load:  # fmt: skip
            time.sleep(0.5)
            started = time.monotonic()
            migrating = threading.Thread(target=lambda: outcome.append(main(["migrate"])))
            migrating.start()
            migrating.join(60)
            migrated_for = time.monotonic() - started
        holder.rollback()
        report = load.report

    during = report.where(lambda r: started < r.started < started + migrated_for)
    slowest = max(r.seconds for r in during)
    logged = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()
              if line.startswith("{")]  # fmt: skip
    print(
        f"migration blocked {migrated_for:.1f} s ({ATTEMPTS} attempts, lock_timeout "
        f"{LOCK_TIMEOUT_MS} ms): {len(during)} API requests meanwhile, "
        f"{sum(r.method == 'POST' for r in during)} writes, slowest {slowest * 1000:.0f} ms"
        + f"\n{logged[-1]}"
    )
    assert outcome == [1]
    assert not has_colour(url)
    message = logged[-1]
    assert f"migration gave up after {ATTEMPTS} attempts" in message, message
    assert f"pid {holder_pid}" in message and "'long-writer'" in message
    assert "RowExclusiveLock on items" in message
    assert sum("retrying in" in line for line in logged) == ATTEMPTS - 1
    assert during and all(r.status in (200, 201) for r in during), report.statuses
    assert slowest < LOCK_TIMEOUT_MS / 1000 + 0.5, slowest  # queued at most the lock timeout


def test_a_migration_goes_through_once_the_transaction_ends(pending_revision: str) -> None:
    url = pending_revision
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE items IN ROW EXCLUSIVE MODE")
        threading.Timer(1.5, holder.rollback).start()  # during the first backoff or second try
        assert main(["migrate"]) == 0
    assert has_colour(url)
