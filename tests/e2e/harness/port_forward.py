"""`kubectl port-forward` as a context manager that is ready the moment it says so.

pytest-kind's `KindCluster.port_forward` picks a random port, sleeps a second and probes
it, retrying up to ten times: about 10 s per forward, and a port taken by someone else
in the meantime is a silent retry. Here kubectl picks a free local port itself (`:REMOTE`)
and we read the port from its "Forwarding from 127.0.0.1:PORT -> REMOTE" line, so the
forward is usable as soon as kubectl listens, and a failure (no such service, no ready
pod) surfaces at once with kubectl's own message.
"""

from __future__ import annotations

import collections
import queue
import re
import subprocess
import threading
import time
from types import TracebackType
from typing import IO

from tests.e2e.harness.kubectl import Kubectl

FORWARDING_LINE = re.compile(
    r"^Forwarding from (?P<address>\[[0-9a-fA-F:]+\]|[0-9.]+):(?P<port>\d+) -> (?P<remote>\d+)"
)
# Lines kept per stream for error messages; kubectl logs one line per connection.
KEPT_LINES = 200


class PortForwardError(AssertionError):
    pass


def parse_forwarding_line(line: str) -> tuple[str, int, int] | None:
    """(local address, local port, remote port) from kubectl's announcement, else None."""
    match = FORWARDING_LINE.match(line.strip())
    if match is None:
        return None
    return match["address"].strip("[]"), int(match["port"]), int(match["remote"])


class PortForward:
    """Forward 127.0.0.1:<a free port> to `target` (e.g. "svc/app") port `remote_port`."""

    def __init__(
        self,
        kubectl: Kubectl,
        target: str,
        remote_port: int,
        *,
        address: str = "127.0.0.1",
        startup_timeout: float = 30.0,
    ) -> None:
        self.kubectl = kubectl
        self.target = target
        self.remote_port = remote_port
        self.address = address
        self.startup_timeout = startup_timeout
        self.local_port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()
        self._stdout_tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._readers: list[threading.Thread] = []

    @property
    def argv(self) -> list[str]:
        return self.kubectl.argv(
            "port-forward", "--address", self.address, self.target, f":{self.remote_port}"
        )

    def url(self, path: str = "/") -> str:
        if self.local_port is None:
            raise RuntimeError("the port-forward is not running; use it as a context manager")
        return f"http://{self.address}:{self.local_port}{path}"

    def __enter__(self) -> PortForward:
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        # Both pipes are drained for the whole life of the forward: kubectl writes a line
        # per connection, and a full pipe would block it, hanging every later request.
        self._readers = [
            self._start_reader(self._proc.stdout, self._stdout_tail, self._stdout_lines),
            self._start_reader(self._proc.stderr, self._stderr_tail, None),
        ]
        try:
            self.local_port = self._wait_for_forwarding_line()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start_reader(
        self,
        stream: IO[str],
        tail: collections.deque[str],
        lines: queue.Queue[str | None] | None,
    ) -> threading.Thread:
        def pump() -> None:
            for line in stream:
                tail.append(line.rstrip("\n"))
                if lines is not None:
                    lines.put(line)
            if lines is not None:
                lines.put(None)  # end of output: kubectl has exited

        thread = threading.Thread(target=pump, name=f"port-forward {self.target}", daemon=True)
        thread.start()
        return thread

    def _wait_for_forwarding_line(self) -> int:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PortForwardError(
                    f"`{' '.join(self.argv)}` printed no 'Forwarding from' line within "
                    f"{self.startup_timeout:g}s\n{self._output_report()}"
                )
            try:
                line = self._stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                assert self._proc is not None
                code = self._proc.wait()
                # The stderr reader may still be copying kubectl's last words.
                self._readers[1].join(timeout=2)
                raise PortForwardError(
                    f"`{' '.join(self.argv)}` exited {code} before forwarding\n"
                    f"{self._output_report()}"
                )
            parsed = parse_forwarding_line(line)
            if parsed is not None:
                return parsed[1]

    def assert_alive(self) -> None:
        """Fail with kubectl's output if the forward has died (e.g. its pod went away)."""
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise PortForwardError(
                f"the port-forward to {self.target} is not running (exit {code})\n"
                f"{self._output_report()}"
            )

    def ensure_alive(self) -> bool:
        """Start kubectl again if it has exited; True when it had to.

        kubectl ends the whole forward when one connection to the pod fails (e.g. while
        the Flask reloader restarts the server), so a caller that expects the pod to come
        back reconnects instead of failing.
        """
        if self._proc is not None and self._proc.poll() is None:
            return False
        self.close()
        self._stdout_lines = queue.Queue()
        self.__enter__()
        return True

    def _output_report(self) -> str:
        stderr = "\n".join(self._stderr_tail) or "(empty)"
        stdout = "\n".join(self._stdout_tail) or "(empty)"
        return f"--- kubectl stderr ---\n{stderr}\n--- kubectl stdout ---\n{stdout}"

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=5)
        self.local_port = None
