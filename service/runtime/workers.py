"""A gunicorn sync worker that answers, on SIGTERM, the connections already queued for it.

Stock workers stop accepting at SIGTERM and exit after their current request; any
connection the kernel had already accepted into the listen backlog is then reset when
the last worker closes the socket. Those clients were accepted (their TCP handshake
completed) yet get no answer. Before exiting, this worker accepts and answers what is
waiting, for at most DRAIN_SECONDS, so every connection made before the signal is served.
"""

from __future__ import annotations

import errno
import time

from gunicorn.workers.sync import SyncWorker

# The backlog holds at most a few connections per client; answering them takes
# milliseconds. The bound keeps a worker under continuous new load from draining forever.
DRAIN_SECONDS = 1.0
EMPTY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)


class DrainingSyncWorker(SyncWorker):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if not self.alive and self.is_parent_alive():  # stopping, not orphaned
            self.drain_backlog()

    def drain_backlog(self) -> None:
        deadline = time.monotonic() + DRAIN_SECONDS
        for listener in self.sockets:
            while time.monotonic() < deadline:
                self.notify()
                try:
                    self.accept(listener)
                except OSError as exc:
                    if exc.errno in EMPTY:
                        break
                    raise
