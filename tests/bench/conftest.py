"""The benchmark's own fixtures: one small database seeded as `make bench` seeds its large
ones (bench/dataset.py), shared by the tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.servers import Database, seeded_postgres

# The smallest size whose shape matches 100k and 10M: ten rare items, 100 tags.
SMALL = 4000


@pytest.fixture(scope="session")
def seeded() -> Iterator[Database]:
    """A throwaway server seeded with SMALL items. Tests that write add rows after the
    seeded ids; tests of the seeded shape look only at ids up to SMALL."""
    with seeded_postgres(SMALL, report=lambda line: None) as database:
        yield database
