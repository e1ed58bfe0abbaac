"""OpenMetrics exemplars on the latency histogram: per bucket, the trace id of the latest
sampled request that fell in it, so a dashboard goes from a latency spike to its traces.

prometheus_client's multiprocess mode keeps no exemplars (its mmap'd files hold numbers
only), so they travel beside them: each worker's request buffer hands the exemplars it
collected to `ExemplarStore.merge` at every flush (service/telemetry/metrics_buffer.py),
which keeps the latest per bucket and writes them to `exemplars_<pid>.json` in the
multiprocess directory; /metrics reads every live worker's file (the dead ones' are
removed with their other files). Only an OpenMetrics scrape carries them (Prometheus asks
for that format first; it stores them with `--enable-feature=exemplar-storage`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

Key = tuple[str, str, str]  # method, route template, status code
Bucket = tuple[Key, int]  # the labels and the index of the bucket among the histogram's
Seen = tuple[str, float, float]  # trace id, seconds, when (Unix time)
FILE_PREFIX = "exemplars_"


class ExemplarStore:
    """The latest exemplar per bucket of this process, and its copy in the directory."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._latest: dict[Bucket, Seen] = {}
        self._lock = threading.Lock()

    def merge(self, new: dict[Bucket, Seen]) -> None:
        """Called by the request buffer's flush with what it collected since the last."""
        if not new:
            return
        with self._lock:
            self._latest.update(new)
            latest = dict(self._latest)
        if self.directory:
            _write(Path(self.directory) / f"{FILE_PREFIX}{os.getpid()}.json", latest)

    def current(self) -> dict[Bucket, Seen]:
        """Every live process's latest exemplars (this one's alone without a directory)."""
        if not self.directory:
            with self._lock:
                return dict(self._latest)
        merged: dict[Bucket, Seen] = {}
        for path in Path(self.directory).glob(f"{FILE_PREFIX}*.json"):
            for bucket, seen in _read(path).items():
                if bucket not in merged or merged[bucket][2] < seen[2]:
                    merged[bucket] = seen
        return merged

    def forget_parent(self) -> None:
        self._latest = {}
        self._lock = threading.Lock()


def remove(directory: str, pid: int) -> None:
    """A worker exited: its exemplars go with it (newer ones replace them anyway)."""
    with contextlib.suppress(FileNotFoundError):
        (Path(directory) / f"{FILE_PREFIX}{pid}.json").unlink()


def attach(
    metrics: Iterable[Metric], histogram: str, bounds: tuple[float, ...], seen: dict[Bucket, Seen]
) -> Iterator[Metric]:
    """`metrics`, with each of `histogram`'s bucket samples given its exemplar, if any."""
    # Each bucket's `le` as prometheus_client writes it.
    les = [floatToGoString(bound) for bound in bounds]  # type: ignore[no-untyped-call]
    position = {le: index for index, le in enumerate(les)}
    bucket_name = f"{histogram}_bucket"
    for metric in metrics:
        if metric.name == histogram and seen:
            samples = []
            for sample in metric.samples:
                if sample.name == bucket_name:
                    labels = sample.labels
                    key = (labels.get("method", ""), labels.get("route", ""),
                           labels.get("status", ""))  # fmt: skip
                    found = seen.get((key, position.get(labels.get("le", ""), -1)))
                    if found is not None:
                        trace_id, seconds, when = found
                        exemplar = Exemplar({"trace_id": trace_id}, seconds, when)
                        sample = sample._replace(exemplar=exemplar)
                samples.append(sample)
            metric.samples = samples
        yield metric


def _write(path: Path, latest: dict[Bucket, Seen]) -> None:
    # Written whole and renamed into place: a scrape never reads half a file.
    rows = [[*key, index, *seen] for (key, index), seen in latest.items()]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(rows))
    os.replace(temporary, path)


def _read(path: Path) -> dict[Bucket, Seen]:
    try:
        rows: list[list[Any]] = json.loads(path.read_text())
    except (OSError, ValueError):  # gone (the worker exited) or being replaced
        return {}
    return {
        ((str(m), str(r), str(s)), int(i)): (str(t), float(v), float(w))
        for m, r, s, i, t, v, w in rows
    }
