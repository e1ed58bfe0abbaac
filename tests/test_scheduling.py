"""How `make test` shares the suite between workers (tests/scheduling.py)."""

from __future__ import annotations

import pytest

from tests.scheduling import FileAndImageScheduling


@pytest.fixture
def scheduling() -> FileAndImageScheduling:
    # _split_scope reads no state: no controller or workers needed to ask it
    return object.__new__(FileAndImageScheduling)


def test_a_files_tests_share_one_worker(scheduling: FileAndImageScheduling) -> None:
    first = scheduling._split_scope("tests/service/test_items.py::test_create[a]")
    second = scheduling._split_scope("tests/service/test_items.py::TestPages::test_next")
    other = scheduling._split_scope("tests/service/test_tags.py::test_create")
    assert first == second == "tests/service/test_items.py"
    assert other != first


def test_the_image_directories_share_one_worker(scheduling: FileAndImageScheduling) -> None:
    scopes = {
        scheduling._split_scope(nodeid)
        for nodeid in (
            "tests/image/test_image_runtime.py::test_runs_as_non_root",
            "tests/image/test_image_secrets.py::test_no_secret[ca]",
            "tests/release/test_release.py::test_release_pushes_by_digest",
            "tests/e2e/test_e2e_release.py::test_upgrade",
        )
    }
    assert len(scopes) == 1
    assert scopes != {scheduling._split_scope("tests/chart/test_chart_lint.py::test_lint")}
