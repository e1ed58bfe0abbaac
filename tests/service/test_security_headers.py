"""Security headers on every response, success or error; no server version leak."""

from __future__ import annotations

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from service.http.security_headers import HEADERS
from tools.service_process import running_service


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/livez"), ("get", "/api/v1/items"), ("get", "/api/v1/items/999999"),
     ("get", "/nowhere"), ("put", "/api/v1/items"), ("get", "/openapi.json"),
     ("post", "/api/v1/items")],
)  # fmt: skip
def test_every_response_carries_the_security_headers(
    client: FlaskClient, method: str, path: str
) -> None:
    response = getattr(client, method)(path)
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.slow
def test_real_server_leaks_no_version(database_url: str) -> None:
    with running_service({"DATABASE_URL": database_url}) as service:
        for path in ("/livez", "/nowhere"):
            response = requests.get(f"{service.base_url}{path}", timeout=5)
            assert response.headers.get("Server", "") in ("", "gunicorn")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        oversized = requests.get(f"{service.base_url}/livez", headers={"X": "x" * 9000}, timeout=5)
        assert oversized.headers["X-Content-Type-Options"] == "nosniff"
        assert "gunicorn/" not in oversized.text


def test_a_header_the_view_sets_is_kept_not_duplicated(app: Flask) -> None:
    @app.get("/cacheable")
    def cacheable() -> tuple[str, int, dict[str, str]]:
        return "{}", 200, {"Cache-Control": "max-age=60", "Content-Type": "application/json"}

    response = app.test_client().get("/cacheable")
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Request-ID"]


def test_an_unexpected_error_still_carries_the_headers(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-boom"
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, name


def test_a_view_cannot_add_a_second_request_id(app: Flask) -> None:
    @app.get("/own-id")
    def own_id() -> tuple[str, int, dict[str, str]]:
        return "{}", 200, {"X-Request-ID": "mine", "Content-Type": "application/json"}

    response = app.test_client().get("/own-id", headers={"X-Request-ID": "req-own"})
    assert response.headers.getlist("X-Request-ID") == ["req-own"]
