"""The owners' migrations are expand-only: the previous release, its own code exported from
git, serves under load while they run and after, its rows (and those it writes during
the rollout) belong to `unowned`; the contract step, run once it is gone, lets two owners
share a name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service import create_app
from service.config import AuthSettings, Settings, normalise_database_url
from service.store.schema_revision import ROOT, latest_revision
from tests.conftest import migrate
from tools.load import LoadLoop, Request, send
from tools.prereq import missing
from tools.service_process import running_service

pytestmark = pytest.mark.slow

# The first revision of owners: the previous release is the code just before it.
FIRST_REVISION = "migrations/versions/0003_add_owners.py"
PREVIOUS_HEAD = "0002"
# The owners' release: what its `migrate` reached (0006 is its contract step). Later releases'
# revisions come after them (their `migrate` applies 0006 on its way: a release is never
# skipped), so this test names them instead of this code's head.
OWNERS_HEAD = "0005"


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree of the commit before FIRST_REVISION was added (HEAD while it is not yet
    committed), as `git archive` gives it: what the previous release runs."""
    found = git("log", "--diff-filter=A", "--format=%H", "--", FIRST_REVISION)
    if found.returncode != 0:
        missing(f"no git history here ({found.stderr.decode().strip()}): clone the repository")
    added = found.stdout.decode().split()
    revision = f"{added[-1]}^" if added else "HEAD"
    archive = git("archive", revision)
    if archive.returncode != 0:  # a shallow clone: actions/checkout fetch-depth: 0
        missing(f"`git archive {revision}` failed: fetch the history (git fetch --unshallow)")
    tree = tmp_path_factory.mktemp("previous-release")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    assert not (tree / FIRST_REVISION).exists()
    return tree


def previous_clients(ids: list[int]) -> Callable[[int], Request]:
    """What the previous release's clients send: items with tags, pages by tag, changes."""

    def next_request(n: int) -> Request:
        item = f"/api/v1/items/{ids[n % len(ids)]}"
        return [
            ("POST", "/api/v1/items", {"name": f"during-{n}", "tags": ["red"]}),
            ("GET", "/api/v1/items?tag=red&limit=20", None),
            ("GET", item, None),
            ("PATCH", item, {"description": f"d{n}", "tags": ["red", "blue"]}),
            ("GET", "/api/v1/tags?limit=20", None),
        ][n % 5]

    return next_request


def answered(port: int, request: Request) -> Any:
    result = send("127.0.0.1", port, request, 10)
    assert result.status in (200, 201, 204), (request, result)
    return result.body


def test_the_previous_release_serves_while_owners_arrive_and_after(
    empty_database: str,
    previous_release: Path,
    settings: Settings,
    auth_settings: AuthSettings,
    bearer: Callable[..., dict[str, str]],
) -> None:
    url = empty_database
    migrate(url, PREVIOUS_HEAD)
    env = {"DATABASE_URL": url, "GUNICORN_WORKERS": "2", "LOG_LEVEL": "WARNING"}
    with running_service(env, code=previous_release) as old:
        for name in ("red", "blue"):
            answered(old.port, ("POST", "/api/v1/tags", {"name": name}))
        ids = [answered(old.port, ("POST", "/api/v1/items", {"name": f"before-{n}",
                                                            "tags": ["red"]}))["id"]
               for n in range(10)]  # fmt: skip
        with LoadLoop(old.port, previous_clients(ids), threads=4, seconds=120) as load:
            time.sleep(0.5)
            migrated = subprocess.run(
                [sys.executable, "-m", "alembic", "upgrade", OWNERS_HEAD], cwd=ROOT,
                capture_output=True, text=True, timeout=120,
                env={**os.environ, "DATABASE_URL": url},
            )  # fmt: skip
            time.sleep(0.5)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        during = load.report.results
        assert len(during) > 50 and all(r.status in (200, 201) for r in during), (
            load.report.statuses
        )
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
                OWNERS_HEAD,
            )

        # After: every operation of the previous release, on the new schema.
        answered(old.port, ("POST", "/api/v1/tags", {"name": "after"}))
        item = answered(old.port, ("POST", "/api/v1/items", {"name": "after", "tags": ["red"]}))
        path = f"/api/v1/items/{item['id']}"
        assert answered(old.port, ("PATCH", path, {"name": "renamed", "tags": ["after"]}))[
            "tags"
        ] == ["after"]  # fmt: skip
        assert (
            answered(old.port, ("GET", "/api/v1/items?tag=after", None))["items"][0]["id"]
            == (item["id"])
        )
        tag = next(t for t in answered(old.port, ("GET", "/api/v1/tags?limit=100", None))["tags"]
                   if t["name"] == "after")  # fmt: skip
        answered(old.port, ("DELETE", f"/api/v1/tags/{tag['id']}", None))
        answered(old.port, ("DELETE", path, None))
        with psycopg.connect(url) as conn:
            owners = conn.execute(
                "SELECT DISTINCT owner FROM items UNION SELECT DISTINCT owner FROM tags"
            ).fetchall()
        assert owners == [("unowned",)], "the previous release's rows belong to `unowned`"

        # Names stay unique across owners while the previous release may serve.
        with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO tags (owner, name) VALUES ('alice', 'red')")
        assert answered(old.port, ("GET", "/api/v1/items?tag=red", None))["items"]

    # The previous release is gone: the contract step (this code's `migrate --contract`
    # reaches its own head too), and two owners may share a name. The previous release's
    # rows are only the admin's to reach.
    contract = subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--contract"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, env={**os.environ, "DATABASE_URL": url},
    )  # fmt: skip
    assert contract.returncode == 0, contract.stdout + contract.stderr
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == (latest_revision(),)
    app = create_app(replace(settings, database_url=normalise_database_url(url),
                             auth=auth_settings))  # fmt: skip
    new = app.test_client()
    alice = bearer(subject="alice")
    admin = bearer(subject="root", scope="items:read items:write items:admin")
    assert new.get(f"/api/v1/items/{ids[0]}", headers=admin).json["owner"] == "unowned"
    assert new.get(f"/api/v1/items/{ids[0]}", headers=alice).status_code == 404
    assert new.get("/api/v1/items", headers=alice).json["items"] == []
    assert new.post("/api/v1/tags", json={"name": "red"}, headers=alice).status_code == 201
    red = new.get("/api/v1/items?tag=red&limit=100", headers=admin).json["items"]
    assert red and {row["owner"] for row in red} == {"unowned"}  # alice's red has no item yet
    tagged = new.post("/api/v1/items", json={"name": "x", "tags": ["red"]}, headers=alice)
    assert tagged.status_code == 201 and tagged.json["owner"] == "alice"
    newest = new.get(f"/api/v1/items?tag=red&cursor={tagged.json['id'] - 1}", headers=admin)
    assert [row["owner"] for row in newest.json["items"]] == ["alice"]  # both owners' red
    app.extensions["db"].engine.dispose()

    # Why it waited: the previous release reads one tag per name, and fails on two.
    with running_service(env, code=previous_release) as old:
        result = send("127.0.0.1", old.port, ("GET", "/api/v1/items?tag=red", None), 10)
        assert result.status == 500
