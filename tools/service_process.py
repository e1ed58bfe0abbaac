"""Run the real service (`python -m service serve`, i.e. gunicorn) as a child process.

Used by the tests that need real workers (metrics, logs, signals) and by the benchmark,
so both exercise exactly what the image runs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tools.localpg import free_port

ROOT = Path(__file__).resolve().parent.parent


def stop_process(process: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class ServiceProcess:
    process: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_until_serving(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited ({self.process.returncode}):\n{self.output()}")
            url = f"{self.base_url}/livez"  # always http://127.0.0.1
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"service did not answer /livez in {timeout}s:\n{self.output()}")


@contextlib.contextmanager
def running_service(
    env: dict[str, str], *, command: str = "serve", wait: bool = True, code: Path = ROOT
) -> Iterator[ServiceProcess]:
    """Start the service with `env` added to ours; stop it (SIGTERM, then SIGKILL) after.
    `code`: the tree to run (another release's, exported from git)."""
    port = int(env.get("PORT") or free_port())
    full_env = {**os.environ, "PORT": str(port), "APP_ENV": "dev", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", command],
        env=full_env,
        cwd=code,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = ServiceProcess(process, port)
    assert process.stdout is not None
    reader = threading.Thread(
        target=lambda: service.lines.extend(line.rstrip("\n") for line in process.stdout or ()),
        daemon=True,
    )
    reader.start()
    try:
        if wait:
            service.wait_until_serving()
        yield service
    finally:
        stop_process(process, timeout=30)
        reader.join(timeout=5)
