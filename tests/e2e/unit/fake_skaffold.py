"""A stand-in for `skaffold dev` in the harness unit tests: prints what skaffold prints.

FAKE_SKAFFOLD_MODE     sync (default) | rebuild | crash | stubborn
FAKE_SKAFFOLD_WATCH    a file; when it changes, report a sync (or a rebuild)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    mode = os.environ.get("FAKE_SKAFFOLD_MODE", "sync")
    watched = Path(os.environ["FAKE_SKAFFOLD_WATCH"])
    if mode == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:

        def cleanup(signum: int, frame: object) -> None:
            say("Cleaning up...")
            say(' - release "app" uninstalled')
            sys.exit(0)

        signal.signal(signal.SIGINT, cleanup)
    say("Generating tags...")
    say(" - service -> service:e2e-1-dev")
    say("Checking cache...")
    say(" - service: Not found. Building")
    say("Starting build...")
    say("Building [service]...")
    if mode == "crash":
        print("build [service] failed: exit status 1", file=sys.stderr, flush=True)
        return 1
    say("Starting deploy...")
    say("Deployments stabilized in 3.2 seconds")
    say("Press Ctrl+C to exit")
    say("Watching for changes...")
    seen = watched.stat().st_mtime_ns
    while True:
        time.sleep(0.05)
        now = watched.stat().st_mtime_ns
        if now == seen:
            continue
        seen = now
        if mode == "rebuild":
            say("Generating tags...")
            say("Building [service]...")
        else:
            say("Syncing 1 files for service:e2e-1-dev")
        say("Watching for changes...")


if __name__ == "__main__":
    sys.exit(main())
