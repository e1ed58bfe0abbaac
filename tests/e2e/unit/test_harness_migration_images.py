"""The upgrade images' migrations, applied to a real PostgreSQL with the service's own CLI.

This is what the live tests 3 and 4 rely on, checked here: the expand revision applies
after the current head; the failing one fails with its marker, leaves the database at
the revision before it, and makes the new code's wait-for-schema give up while the old
code still sees a usable schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.store.schema_revision import code_head
from tests.e2e.harness.migration_images import (
    EXPAND_REVISION,
    FAILING_REVISION,
    FAILURE_MARKER,
    MigrationTreeError,
    append_revisions,
    copy_source,
    prepare_build_context,
    revision_graph,
    single_head,
)

ROOT = Path(__file__).resolve().parents[3]
BASE_HEAD = single_head(ROOT / "migrations" / "versions")


def alembic_heads(context: Path) -> list[str]:
    config = Config(str(context / "alembic.ini"))
    config.set_main_option("script_location", str(context / "migrations"))
    return list(ScriptDirectory.from_config(config).get_heads())


def service_cli(context: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m service ARGS` with the code in `context`, as the image would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=context,
        env={**env, "DATABASE_URL": database_url, "LOG_LEVEL": "INFO"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def database_revision(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("images")
    expand = base / "expand"
    fails = base / "fails"
    assert prepare_build_context(ROOT, expand, [EXPAND_REVISION]) == EXPAND_REVISION.revision
    head = prepare_build_context(ROOT, fails, [EXPAND_REVISION, FAILING_REVISION])
    assert head == FAILING_REVISION.revision
    return {"expand": expand, "fails": fails}


def test_revisions_chain_after_the_current_head(contexts: dict[str, Path]) -> None:
    assert alembic_heads(contexts["expand"]) == [EXPAND_REVISION.revision]
    assert alembic_heads(contexts["fails"]) == [FAILING_REVISION.revision]
    graph = revision_graph(contexts["fails"] / "migrations" / "versions")
    assert graph[EXPAND_REVISION.revision] == (BASE_HEAD,)
    assert graph[FAILING_REVISION.revision] == (EXPAND_REVISION.revision,)
    # The copy holds what an image build reads, and nothing private or heavy.
    for needed in ("Dockerfile", "requirements.lock", "alembic.ini", "Makefile", "make"):
        assert (contexts["expand"] / needed).exists(), needed
    for excluded in (".git", ".venv", ".local", "bin"):
        assert not (contexts["expand"] / excluded).exists(), excluded
    # The working tree itself is untouched.
    assert single_head(ROOT / "migrations" / "versions") == BASE_HEAD


def test_expand_then_failure_on_a_real_database(
    contexts: dict[str, Path], empty_database: str
) -> None:
    assert service_cli(ROOT, empty_database, "migrate").returncode == 0
    assert database_revision(empty_database) == code_head()  # its contract steps wait

    upgraded = service_cli(contexts["expand"], empty_database, "migrate")
    assert upgraded.returncode == 0, upgraded.stderr
    assert database_revision(empty_database) == EXPAND_REVISION.revision

    failed = service_cli(contexts["fails"], empty_database, "migrate")
    assert failed.returncode != 0
    assert FAILURE_MARKER in failed.stdout + failed.stderr  # what the Job's log will show
    assert database_revision(empty_database) == EXPAND_REVISION.revision

    # New pods (failing image) never pass their init container; old ones keep serving.
    waiting = service_cli(contexts["fails"], empty_database, "wait-for-schema", "--timeout", "1")
    assert waiting.returncode != 0
    assert service_cli(ROOT, empty_database, "wait-for-schema", "--timeout", "5").returncode == 0
    expand_code = service_cli(contexts["expand"], empty_database, "wait-for-schema")
    assert expand_code.returncode == 0


def test_the_failing_image_alone_applies_the_expand_step_first(
    contexts: dict[str, Path], empty_database: str
) -> None:
    # Test 4 run on its own: the release is on the base schema when the failing image comes.
    assert service_cli(ROOT, empty_database, "migrate").returncode == 0
    failed = service_cli(contexts["fails"], empty_database, "migrate")
    assert failed.returncode != 0
    assert database_revision(empty_database) == EXPAND_REVISION.revision


def test_a_tree_with_two_heads_is_refused(tmp_path: Path) -> None:
    context = copy_source(ROOT, tmp_path / "src")
    versions = context / "migrations" / "versions"
    # A second root: the tree now has two heads, and there is no single place to append.
    (versions / "zz_branch.py").write_text('revision = "zz"\ndown_revision = None\n')
    with pytest.raises(MigrationTreeError, match="has 2 heads"):
        append_revisions(context, [EXPAND_REVISION])
