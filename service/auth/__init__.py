"""Bearer-token access control for /api: keys (keys.py), tokens (verify.py), scopes, the guard."""

from __future__ import annotations

import logging

from flask import Flask

from service.config import AuthSettings
from service.store.owners import ANONYMOUS_SCOPE

log = logging.getLogger(__name__)

# The WSGI environ key where the guard leaves the caller's `sub` for the access log
# (service/runtime/gunicorn_conf.py); defined here so that log imports nothing heavy.
SUBJECT_KEY = "service.auth.subject"
# Where the guard leaves the verified Caller (its owner's Scope: service/api/requests.py).
CALLER_KEY = "service.auth.caller"
# The app extension holding the Scope of every request when access control is off.
SCOPE_WHEN_AUTH_OFF = "auth.scope_without_token"


def init_app(app: Flask, settings: AuthSettings) -> None:
    """Require a valid token on /api, or say once, at start, why the API is open (and that
    every request then acts as the one owner `anonymous`: isolation needs tokens)."""
    if not settings.enabled:
        app.extensions[SCOPE_WHEN_AUTH_OFF] = ANONYMOUS_SCOPE
    if settings.disabled:
        log.warning(
            "AUTH_DISABLED=true: /api answers callers without a token, all as the one owner "
            "`anonymous`; only safe behind a gateway or mesh that authenticates them"
        )
        return
    if not settings.enabled:
        log.warning(
            "no AUTH_ISSUER with APP_ENV=dev: /api answers anonymous callers, all as the one "
            "owner `anonymous`; set AUTH_ISSUER and AUTH_AUDIENCE to require tokens "
            "(docs/auth.md)"
        )
        return
    from service.auth.guard import Guard
    from service.auth.keys import KeySet
    from service.auth.verify import TokenVerifier

    keys = KeySet(settings.issuer, jwks_url=settings.jwks_url, jwks_file=settings.jwks_file)
    verifier = TokenVerifier(
        keys, issuer=settings.issuer, audience=settings.audience, owner_claim=settings.owner_claim
    )
    app.extensions["auth"] = verifier
    # Wraps Flask's own handling, so the security headers and the request observer,
    # added after this, see refused requests like any other.
    app.wsgi_app = Guard(app.wsgi_app, app, verifier)  # type: ignore[method-assign]
