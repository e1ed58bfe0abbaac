"""A revision that fails halfway leaves the database exactly at the previous revision."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from service.store.schema_revision import ROOT, latest_revision

pytestmark = pytest.mark.slow

FAILING_REVISION = '''
"""Add a table and a column, then fail."""
import sqlalchemy as sa
from alembic import op

revision = "9999_fails"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("items", sa.Column("colour", sa.String(20)))
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    pass
'''


def test_failing_revision_changes_nothing(empty_database: str, tmp_path: Path) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_fails.py").write_text(
        FAILING_REVISION.format(head=latest_revision())
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text((ROOT / "alembic.ini").read_text())  # script_location is %(here)s/migrations
    env = {**os.environ, "DATABASE_URL": empty_database, "PYTHONPATH": str(ROOT)}

    def upgrade(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", target],
            env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip

    assert upgrade(latest_revision()).returncode == 0
    failed = upgrade("head")
    assert failed.returncode != 0
    assert "division by zero" in failed.stdout + failed.stderr

    engine = create_engine(empty_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == latest_revision()
    inspector = inspect(engine)
    assert "half_done" not in inspector.get_table_names()
    assert "colour" not in {c["name"] for c in inspector.get_columns("items")}
    engine.dispose()
