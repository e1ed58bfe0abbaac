"""JSON for the errors gunicorn answers itself (bad request line, headers too large...).

Those requests never reach Flask, and gunicorn writes a small HTML page for them. The
API promises one error shape everywhere, so the page is replaced with the same JSON body
the app uses. gunicorn calls `util.write_error` by module attribute, so replacing that
function is enough; the status line and reason stay gunicorn's.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
         431: "headers_too_large", 500: "internal_error", 501: "not_implemented"}  # fmt: skip


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps(
        {"error": {"code": CODES.get(status_int, "bad_request"), "message": reason,
                   "details": [{"field": "request", "message": mesg}]}}
    ).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def install() -> None:
    util.write_error = write_json_error
