"""Fixtures for access-control tests: a real issuer on a loopback port, and the app trusting it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import jwt
import psycopg
import pytest
from flask import Flask

from service import create_app
from service.auth.verify import TokenVerifier
from service.config import AuthSettings, Settings
from service.store.database import get_db
from tests.auth.issuer import AUDIENCE, LocalIssuer


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per signature verification (jwt.decode) from here on."""
    calls: list[None] = []
    real = jwt.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return calls


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    running = LocalIssuer().start()
    yield running
    running.stop()


class FakeClock:
    """The key set's monotonic clock, moved by the test (the 30 s refetch limit)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer_app(
    settings: Settings, connection: psycopg.Connection[Any], issuer: LocalIssuer, clock: FakeClock
) -> Flask:
    """The app with AUTH_ISSUER pointing at the local issuer (discovery, then its JWKS)."""
    app = create_app(replace(settings, auth=AuthSettings(issuer=issuer.url, audience=AUDIENCE)))
    get_db(app).bind_to(connection)
    verifier: TokenVerifier = app.extensions["auth"]
    verifier.keys.clock = clock
    return app


@pytest.fixture
def call(issuer_app: Flask) -> Callable[..., Any]:
    """call(method, path, token=None, **kwargs) -> the test client's response."""
    client = issuer_app.test_client()

    def request(method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return client.open(path, method=method, headers=headers, **kwargs)

    return request
