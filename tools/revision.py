"""`make revision m="add colour"`: write the next migration from the models' changes.

Autogenerate compares service/store/models.py with a database, so this starts a
throwaway local PostgreSQL (tools/localpg.py), upgrades it to the current head, writes
migrations/versions/NNNN_<slug>.py with the next sequential id (0002, 0003, ...) and
formats it with ruff. Review the file: autogenerate misses some changes (renames, server
defaults) and every migration must be expand-only (README, "Migrations").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.store.schema_revision import alembic_config
from tools.localpg import throwaway_postgres


def next_revision_id(script: ScriptDirectory) -> str:
    """One more than the highest numeric id so far, as four digits."""
    numbers = [int(rev.revision) for rev in script.walk_revisions() if rev.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def write_revision(config: Config, message: str) -> Path:
    """Autogenerate the next revision in `config`'s script location; its path."""
    rev_id = next_revision_id(ScriptDirectory.from_config(config))
    with throwaway_postgres() as server:
        os.environ["DATABASE_URL"] = server.url()
        try:
            command.upgrade(config, "head")
            written = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        finally:
            del os.environ["DATABASE_URL"]
    script = written[0] if isinstance(written, list) else written
    assert script is not None and script.path is not None
    path = Path(script.path)
    tidy(path)
    return path


def tidy(path: Path) -> None:
    """Format, fix what ruff can (imports), format again; then print what is left, if
    anything, for a person to mend. Formatting first: autogenerate writes long lines that
    the formatter wraps, and ruff would report each as an error (E501) before that."""
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "format", "--quiet", str(path)], check=True)
    subprocess.run([*ruff, "check", "--fix", "--silent", str(path)], check=False)
    subprocess.run([*ruff, "format", "--quiet", str(path)], check=True)
    left = subprocess.run([*ruff, "check", "--quiet", str(path)], capture_output=True, text=True)
    if left.returncode != 0:
        print(f"make revision: ruff still finds these in {path}; mend them by hand:")
        print(left.stdout.rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", help='what the migration does, e.g. "add colour"')
    message = parser.parse_args(argv).message.strip()
    if not message or "\n" in message:
        print('make revision: give a one-line message: make revision m="add colour"')
        return 2
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    if len(script.get_heads()) > 1:
        print("make revision: migrations/versions has several heads; merge them first")
        return 1
    path = write_revision(config, message)
    print(f"wrote {path}: review it (expand-only?), then `make run` applies it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
