"""Local stand-ins for the harness unit tests: a fake kubectl and scripted HTTP(S) servers."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.harness.kubectl import Kubectl

FAKE_KUBECTL = Path(__file__).with_name("fake_kubectl.py")
FAKE_KIND = Path(__file__).with_name("fake_kind.py")


class FakeKind:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = tmp_path / "kind-state"
        self.state.mkdir()
        monkeypatch.setenv("FAKE_KIND_STATE", str(self.state))
        self.binary = tmp_path / "kind"
        self.binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KIND}" "$@"\n')
        self.binary.chmod(0o755)

    def clusters(self) -> list[str]:
        path = self.state / "clusters.json"
        return json.loads(path.read_text()) if path.exists() else []

    def add(self, name: str) -> None:
        (self.state / "clusters.json").write_text(json.dumps([*self.clusters(), name]))

    def calls(self) -> list[list[str]]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@dataclass
class FakeKubectl:
    kubectl: Kubectl
    log: Path
    monkeypatch: pytest.MonkeyPatch

    def set(self, **env: str) -> None:
        for key, value in env.items():
            self.monkeypatch.setenv(f"FAKE_KUBECTL_{key.upper()}", value)

    def invocations(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@dataclass
class ServerScript:
    """What the scripted server answers; request numbers count from 1."""

    version: str = "v1"
    fail: set[int] = field(default_factory=set)  # answer 503
    drop: set[int] = field(default_factory=set)  # close the connection without answering
    requests: int = 0
    hosts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_request(self, host: str) -> int:
        with self.lock:
            self.requests += 1
            self.hosts.append(host)
            return self.requests


@dataclass
class RunningServer:
    url: str
    port: int
    script: ServerScript
    sni_names: list[str | None]


def _handler(script: ServerScript) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the ingress

        def do_GET(self) -> None:
            number = script.next_request(self.headers.get("Host", ""))
            if number in script.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status = 503 if number in script.fail else 200
            body = json.dumps(
                {
                    "version": script.version,
                    "request": number,
                    "path": self.path,
                    "host": self.headers.get("Host"),
                }
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest's output for failures

    return Handler


@contextlib.contextmanager
def serving(tls: tuple[Path, Path] | None = None) -> Iterator[RunningServer]:
    """A scripted HTTP server on 127.0.0.1; HTTPS with (cert, key) when `tls` is given."""
    script = ServerScript()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    port = server.server_address[1]
    running = RunningServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", port, script, [])
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)

        def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            running.sni_names.append(name)

        context.sni_callback = remember_sni
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
