"""`make run`: migrate, then serve on http://localhost:$PORT.

Without DATABASE_URL it runs its own PostgreSQL with data in .local/postgres, kept
across restarts; with DATABASE_URL it uses that server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from tools.localpg import LocalPostgres, free_port

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".local" / "postgres" / "data"


def local_database() -> LocalPostgres:
    port_file = DATA_DIR.parent / "port"
    # Keep the port stable so a DATABASE_URL printed last time still works.
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    server = LocalPostgres(DATA_DIR, port=port, durable=True)
    if not server.is_running():
        print(f"Starting local PostgreSQL (data in {DATA_DIR.relative_to(ROOT)})", flush=True)
        server.start()
    port_file.write_text(str(server.port))
    return server


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--dev", action="store_true", help="Flask dev server with reloader")
    options = args.parse_args()
    # `kill`/`timeout` send SIGTERM: shut down as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    env = dict(os.environ)
    env.setdefault("APP_ENV", "dev")
    env.setdefault("PORT", "8000")
    # As in the image: /metrics adds up every worker (the directory is wiped at start).
    metrics_dir = ROOT / ".local" / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    server = None
    if not env.get("DATABASE_URL") and not env.get("DATABASE_URL_FILE"):
        server = local_database()
        env["DATABASE_URL"] = server.url()
    python = sys.executable
    try:
        # Our own database serves no previous release: it takes the contract steps at once.
        # One given in DATABASE_URL may, so it gets only what this code needs.
        contract = ["--contract"] if server is not None else []
        migrated = subprocess.run(
            [python, "-m", "service", "migrate", *contract], env=env, cwd=ROOT
        )
        if migrated.returncode != 0:
            return migrated.returncode
        print(
            f"\nServing on http://localhost:{env['PORT']}  "
            f"(try http://localhost:{env['PORT']}/api/v1/items and /openapi.json; Ctrl-C stops)\n",
            flush=True,
        )
        command = "dev" if options.dev else "serve"
        child = subprocess.Popen([python, "-m", "service", command], env=env, cwd=ROOT)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGTERM)
            child.wait()
            return 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
