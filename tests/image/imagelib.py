"""Helpers for the image tests: run containers, read their logs, walk an image's files.

Containers share the host's network (`--network host`): the test PostgreSQL listens on
127.0.0.1, and the service's port is a free port of the host.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from tools.localpg import free_port

RUNTIME_UID = 10001
RUNTIME_GID = 10001

# How production runs it: nothing writable but /tmp and the metrics directory, no
# capabilities, no privilege escalation.
HARDENED = (
    "--read-only",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--tmpfs", "/tmp",
    "--tmpfs", "/run/metrics",
)  # fmt: skip


def run(
    argv: Sequence[str], *, timeout: float = 120, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a docker command; the caller checks the exit status."""
    result = subprocess.run(
        list(argv), input=stdin, capture_output=True, timeout=timeout, check=False
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


def check(argv: Sequence[str], *, timeout: float = 120) -> str:
    result = run(argv, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def inspect(docker: str, ref: str, kind: str = "image") -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(check([docker, kind, "inspect", ref]))
    return data[0]


@dataclass
class Container:
    """A detached container; `logs()` is everything it wrote, stdout and stderr."""

    docker: str
    id: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = run([self.docker, "logs", self.id])
        return result.stdout + result.stderr

    def logs_with_access_line(self, request_id: str, timeout: float = 10) -> str:
        """The logs once the access line of `request_id` is in (or, after `timeout`, as
        they are): gunicorn writes it after the client has its response."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs()
            lines = logs.splitlines()
            if any(request_id in line and "gunicorn.access" in line for line in lines):
                return logs
            if time.monotonic() >= deadline:
                return logs
            time.sleep(0.1)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = inspect(self.docker, self.id, "container")["State"]
        return state

    def wait_ready(self, path: str = "/readyz", timeout: float = 30) -> requests.Response:
        """Poll `path` until it answers 200; fail with the container's logs otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"the container exited before {path} was 200:\n{self.logs()}")
            try:
                response = requests.get(self.url + path, timeout=5)
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise AssertionError(f"{path} not 200 after {timeout}s (last: {last}):\n{self.logs()}")

    def wait_exit(self, timeout: float) -> int:
        result = run([self.docker, "wait", self.id], timeout=timeout)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip())


@contextlib.contextmanager
def container(
    docker: str,
    image: str,
    *args: str,
    env: dict[str, str] | None = None,
    options: Sequence[str] = HARDENED,
) -> Iterator[Container]:
    """`docker run -d` with PORT set to a free host port; removed afterwards.

    Access control is off (AUTH_DISABLED=true) unless a test sets AUTH_*: these tests check
    the image's runtime, and production settings refuse to start without an issuer
    (tests/auth/ covers the tokens).
    """
    port = free_port()
    env = {"PORT": str(port), "AUTH_DISABLED": "true", **(env or {})}
    env_args = [f"--env={key}={value}" for key, value in env.items()]
    cid = check(
        [docker, "run", "--detach", "--network", "host", *options, *env_args, image, *args]
    ).strip()
    try:
        yield Container(docker, cid, port)
    finally:
        run([docker, "rm", "--force", "--volumes", cid])


def run_once(
    docker: str,
    image: str,
    *args: str,
    env: dict[str, str] | None = None,
    options: Sequence[str] = HARDENED,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` to completion (migrate, usage, config errors)."""
    env_args = [f"--env={key}={value}" for key, value in (env or {}).items()]
    return run(
        [docker, "run", "--rm", "--network", "host", *options, *env_args, image, *args],
        timeout=timeout,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as a JSON object; fails naming the first line that is not."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"a log line is not JSON: {line!r}\nall output:\n{text}") from None
        assert isinstance(record, dict), f"a log line is not a JSON object: {line!r}"
        records.append(record)
    return records


def exported_files(docker: str, image: str) -> Iterator[tarfile.TarInfo]:
    """Every entry of the image's flattened filesystem (`docker export` of a container)."""
    cid = check([docker, "create", image]).strip()
    try:
        with subprocess.Popen([docker, "export", cid], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                yield from tar
    finally:
        run([docker, "rm", "--force", cid])
