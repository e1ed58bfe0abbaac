"""How `make test` shares the suite between pytest-xdist workers (`-n auto --dist loadfile`).

Much of the suite waits on real processes (PostgreSQL restarts, outage windows, gunicorn,
helm), so a worker per core nearly halves it. Each worker starts its own PostgreSQL (the
session fixtures in tests/conftest.py). Like xdist's loadfile, a file's tests stay on one
worker, in file order, so module fixtures start once and a test may rely on the ones
before it. In addition, the directories that build or pull the images (tests/image, the
release's registry, the live cluster) run on one worker, one after another: two workers
would build the same tags at once.

(`--dist loadgroup` with xdist_group marks would say the same, but pytest 9.2 no longer
lets xdist rename the node ids it groups by: pytest-xdist issue 1386.)
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

IMAGE_DIRECTORIES = ("tests/image/", "tests/release/", "tests/e2e/")


class FileAndImageScheduling(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(IMAGE_DIRECTORIES):
            return "the images"
        return super()._split_scope(nodeid)
