"""A stand-in for kubectl in the harness unit tests: real processes, real sockets.

Behaviour is chosen by environment variables, so a test sets up a scenario and the code
under test runs this script exactly as it would run kubectl:
  FAKE_KUBECTL_LOG            append each invocation's argv (JSON) to this file
  FAKE_KUBECTL_UPSTREAM       host:port that `port-forward` relays connections to
  FAKE_KUBECTL_PORT_FORWARD   ok | chatty | fail | hang | die-after-first
  FAKE_KUBECTL_GET_SEQUENCE   JSON file with a list of documents; each `get` prints the
                              next one (the last one repeats)
  FAKE_KUBECTL_GET_RAW        text `get` prints instead (e.g. not JSON at all)
  FAKE_KUBECTL_FAIL           a command (`logs`, `describe`, ...) that exits 1
`describe`, `logs`, `apply` and `delete` print one line naming their arguments.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if log := os.environ.get("FAKE_KUBECTL_LOG"):
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(argv) + "\n")
    args = [a for a in argv if not a.startswith(("--kubeconfig=", "--namespace="))]
    if not args:
        print("error: no command", file=sys.stderr)
        return 1
    if args[0] == os.environ.get("FAKE_KUBECTL_FAIL"):
        print(f"error: {args[0]} failed (fake)", file=sys.stderr)
        return 1
    if args[0] in {"describe", "logs", "apply", "delete"}:
        print(f"fake kubectl {' '.join(args)}")
        return 0
    if args[0] == "port-forward":
        return port_forward(args[1:])
    if args[0] == "get":
        return get()
    print(f"error: the fake kubectl does not know {args[0]!r}", file=sys.stderr)
    return 1


def get() -> int:
    if (raw := os.environ.get("FAKE_KUBECTL_GET_RAW")) is not None:
        print(raw)
        return 0
    sequence = Path(os.environ["FAKE_KUBECTL_GET_SEQUENCE"])
    counter = sequence.with_suffix(".count")
    calls = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(calls + 1))
    documents = json.loads(sequence.read_text())
    print(json.dumps(documents[min(calls, len(documents) - 1)]))
    return 0


def port_forward(args: list[str]) -> int:
    address = "127.0.0.1"
    if "--address" in args:
        i = args.index("--address")
        address = args[i + 1]
        del args[i : i + 2]
    _target, ports = args
    remote = ports.split(":")[-1]
    mode = os.environ.get("FAKE_KUBECTL_PORT_FORWARD", "ok")
    if mode == "fail":
        print('error: services "app" not found', file=sys.stderr)
        return 1
    if mode == "hang":
        time.sleep(3600)
        return 0
    upstream_host, upstream_port = os.environ["FAKE_KUBECTL_UPSTREAM"].rsplit(":", 1)
    listener = socket.create_server((address, 0))
    port = listener.getsockname()[1]
    print(f"Forwarding from {address}:{port} -> {remote}", flush=True)
    served = 0
    while True:
        conn, _ = listener.accept()
        served += 1
        print(f"Handling connection for {remote}", flush=True)
        if mode == "chatty":
            # More than a pipe holds (64 KiB): blocks here unless the reader drains stdout.
            for n in range(4000):
                print(f"Handling connection for {remote} (chatter line {n})")
            sys.stdout.flush()
        upstream = socket.create_connection((upstream_host, int(upstream_port)))
        relay(conn, upstream)
        if mode == "die-after-first" and served == 1:
            time.sleep(0.2)  # let the relay finish the first exchange
            print("error: lost connection to pod", file=sys.stderr, flush=True)
            return 1


def relay(client: socket.socket, upstream: socket.socket) -> None:
    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    for src, dst in ((client, upstream), (upstream, client)):
        threading.Thread(target=pump, args=(src, dst), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
