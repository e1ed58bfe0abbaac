"""The check in front of /api: a bearer token with the scope the request needs (RFC 6750).

A WSGI middleware around Flask's own request handling, inside the security headers and
the request observer: an accepted request costs a few dict lookups on the environ (a
Flask before_request hook cost 7 us more, in context-local lookups, on every request).
A refused one is answered inside a request context, so it counts under its route
template in the request metrics and leaves in the service's JSON error shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, Response

from service.auth import CALLER_KEY, SUBJECT_KEY
from service.auth.keys import KeysUnavailableError
from service.auth.scopes import required_scope
from service.auth.verify import (
    MALFORMED,
    MISSING,
    SCOPE,
    UNAVAILABLE,
    InvalidTokenError,
    TokenVerifier,
)
from service.http.errors import error_response
from service.telemetry.metrics import AUTH_FAILURES

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REALM = "items"


class AuthFailureError(Exception):
    """A refused request, answered as 401, 403 or 503 with its WWW-Authenticate header."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        challenge: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.challenge, self.retry_after = challenge, retry_after


def answer(failure: AuthFailureError) -> Response:
    response = error_response(failure.status, failure.code, failure.message)
    if failure.challenge is not None:
        response.headers["WWW-Authenticate"] = failure.challenge
    if failure.retry_after is not None:
        response.headers["Retry-After"] = str(failure.retry_after)
    return response


def challenge(error: str | None = None, description: str = "", scope: str = "") -> str:
    """A `Bearer` challenge; `error` is omitted when the request carried no token (RFC 6750 3.1)."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        # Quoted-string: our own messages, with any quote or backslash taken out.
        clean = description.replace("\\", "").replace('"', "'")
        parts.append(f'error_description="{clean}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


class Guard:
    """WSGI middleware: pass a request with a good token on, answer any other itself."""

    def __init__(self, app: WSGIApplication, flask_app: Flask, verifier: TokenVerifier) -> None:
        self.app = app
        self.flask_app = flask_app
        self.verifier = verifier

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        scope = required_scope(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        if scope is not None:
            try:
                self.check(environ, scope)
            except AuthFailureError as failure:
                # Routing runs as the context is pushed: metrics see the route template.
                with self.flask_app.request_context(environ):
                    return answer(failure)(environ, start_response)
        return self.app(environ, start_response)

    def check(self, environ: WSGIEnvironment, scope: str) -> None:
        """Return quietly, or raise AuthFailureError; the caller (and its `sub`, for the
        access log) goes to the environ."""
        token = self._bearer_token(environ.get("HTTP_AUTHORIZATION"))
        try:
            caller = self.verifier.verify(token)
        except InvalidTokenError as exc:
            AUTH_FAILURES.labels(exc.reason).inc()
            raise AuthFailureError(
                401, "invalid_token", str(exc), challenge("invalid_token", str(exc))
            ) from None
        except KeysUnavailableError as exc:
            AUTH_FAILURES.labels(UNAVAILABLE).inc()
            raise AuthFailureError(
                503, "auth_unavailable",
                "The identity provider's signing keys cannot be loaded; retry shortly.",
                retry_after=exc.retry_after,
            ) from None  # fmt: skip
        environ[SUBJECT_KEY] = caller.subject
        environ[CALLER_KEY] = caller
        if scope not in caller.scopes:
            AUTH_FAILURES.labels(SCOPE).inc()
            message = f"The token lacks the scope {scope}."
            raise AuthFailureError(
                403, "insufficient_scope", message,
                challenge("insufficient_scope", message, scope),
            )  # fmt: skip

    @staticmethod
    def _bearer_token(header: str | None) -> str:
        if not header:
            AUTH_FAILURES.labels(MISSING).inc()
            raise AuthFailureError(
                401, "unauthorized", "Send a bearer token: Authorization: Bearer <token>.",
                challenge(),
            )  # fmt: skip
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            AUTH_FAILURES.labels(MALFORMED).inc()
            message = "The Authorization header is not of the form `Bearer <token>`."
            raise AuthFailureError(
                401, "invalid_token", message, challenge("invalid_token", message)
            )
        return token
