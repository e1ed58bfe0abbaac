"""A TCP address that forwards to one server of several, switched at will: what a
Kubernetes Service (CloudNativePG's `-rw`) is to a database's pods, for failover tests.

Pointed at a port, it forwards every new connection there; pointed at nothing, it resets
new connections at once (as a Service without endpoints refuses them). Connections made
before a switch keep their server, as conntrack keeps them in a cluster, until either
side closes, or until `point_at(..., cut=True)` ends them, or `abandon=True` stops
forwarding them while keeping them open: the client's data is still ACKed, nothing
answers (a node gone without a reset, seen through a proxy or a NAT that stays up).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Iterator

BUFFER = 65536


class SwitchableAddress:
    def __init__(self, target: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target = target
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._abandoned: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="address", daemon=True)
        self._acceptor.start()

    def point_at(self, target: int | None, *, cut: bool = False, abandon: bool = False) -> None:
        """New connections go to `target` (None: refused); `cut` also ends the open ones,
        `abandon` leaves them open but forwards nothing more on them."""
        self.target = target
        if abandon:
            with self._lock:
                self._abandoned |= self._pairs
        if cut:
            self.cut()

    def cut(self) -> None:
        """End every open connection (each pump thread then closes its pair)."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    _linger_zero(sock)  # closed with a RST, as by a vanished peer
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._abandoned.clear()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.cut()
        self._acceptor.join(timeout=5)

    def __enter__(self) -> SwitchableAddress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            target = self.target
            if target is None:
                _reset(client)
                continue
            try:
                server = socket.create_connection((self.host, target), timeout=5)
            except OSError:
                _reset(client)  # the server is down: the client sees its connection fail
                continue
            server.settimeout(None)
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), name="pump", daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Copy bytes both ways until one side closes, then close both."""
        client, server = pair
        peer = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            for sock in pair:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select():
                        if pair in self._abandoned:
                            self._closed.wait()  # open, ACKed by the kernel, never answered
                            return
                        data = key.fileobj.recv(BUFFER)  # type: ignore[union-attr]
                        if not data:
                            return
                        peer[key.fileobj].sendall(data)  # type: ignore[index]
            except OSError:
                return
            finally:
                with self._lock:
                    self._pairs.discard(pair)
                for sock in pair:
                    _close(sock)


def _reset(sock: socket.socket) -> None:
    """Close with a RST, as a refusing or vanished peer does, not a polite FIN."""
    with contextlib.suppress(OSError):
        _linger_zero(sock)
    _close(sock)


def _linger_zero(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def switchable_address(target: int | None = None) -> Iterator[SwitchableAddress]:
    address = SwitchableAddress(target)
    try:
        yield address
    finally:
        address.close()
