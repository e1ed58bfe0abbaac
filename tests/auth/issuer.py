"""A real identity provider for tests: OIDC discovery and a JWKS over HTTP on a loopback port.

Its keys can be rotated and the server taken down and brought back during a test; it
counts the requests it answered, so tests can see how often the service fetched.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.devtoken import SigningKey, jwks

AUDIENCE = "items-api"


def without_alg(jwk: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name != "alg"}


class LocalIssuer:
    def __init__(self) -> None:
        self.keys: list[SigningKey] = [SigningKey.generate("key-1")]
        self.hits: dict[str, int] = {"discovery": 0, "jwks": 0}
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signer(self) -> SigningKey:
        return self.keys[0]

    def start(self) -> LocalIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    issuer.hits["discovery"] += 1
                    body: Any = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.hits["jwks"] += 1
                    # Without `alg`, as many providers publish them: then only the
                    # service's algorithm allow-list stands between a key and HS*/none.
                    body = {"keys": [without_alg(key) for key in jwks(*issuer.keys)["keys"]]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        # The same port after a restart, so the service's cached jwks_uri still points here.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def rotate(self, kid: str) -> SigningKey:
        """Publish a new key first in the set (signing with it) and retire the old ones."""
        new = SigningKey.generate(kid)
        self.keys = [new]
        return new

    def mint(self, key: SigningKey | None = None, **changes: Any) -> str:
        params: dict[str, Any] = {"issuer": self.url, "audience": AUDIENCE, "subject": "alice"}
        params.update(changes)
        return (key or self.signer).mint(**params)
