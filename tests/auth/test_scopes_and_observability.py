"""One scope rule for enforcement and the OpenAPI document; failures counted; `sub` logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import EnvironBuilder

from service.auth import SUBJECT_KEY
from service.auth.scopes import READ, SCOPES, WRITE, required_scope
from service.auth.verify import REASONS
from service.http.openapi import api_operations, build_document
from tests.auth.issuer import LocalIssuer
from tests.scrape import metric

Call = Callable[..., Any]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/items", READ),
        ("HEAD", "/api/v1/items/7", READ),
        ("GET", "/api/v1/items/{item_id}", READ),
        ("POST", "/api/v1/items", WRITE),
        ("PATCH", "/api/v1/items/{item_id}", WRITE),
        ("DELETE", "/api/v1/items/7", WRITE),
        ("PUT", "/api/v1/items/7", WRITE),  # not served, never less protected
        ("GET", "/api", READ),
        ("GET", "/livez", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
        ("POST", "/apiary", None),  # a prefix match is by path segment
        ("GET", "//api/v1/items", READ),  # the router merges slashes; so does the rule
    ],
)
def test_required_scope(method: str, path: str, scope: str | None) -> None:
    assert required_scope(method, path) == scope


def test_the_openapi_document_declares_what_is_enforced(app: Flask) -> None:
    doc = build_document(app)
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert all(scope in scheme["description"] for scope in SCOPES)
    operations = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            operations += 1
            assert operation["security"] == [{"bearerAuth": [required_scope(method.upper(), path)]}]
            assert {"401", "403"} <= operation["responses"].keys()
    assert operations == len(api_operations(app)) >= 9  # items' 5 and tags' 4


def test_failures_are_counted_by_reason(call: Call, issuer: LocalIssuer) -> None:
    def count(reason: str) -> float:
        return metric(call("GET", "/metrics").get_data(as_text=True), "auth_failures_total",
                      reason=reason) or 0.0  # fmt: skip

    before = {reason: count(reason) for reason in REASONS}
    call("GET", "/api/v1/items")
    call("GET", "/api/v1/items", "junk")
    call("GET", "/api/v1/items", issuer.mint(lifetime=-300))
    call("POST", "/api/v1/items", issuer.mint(scope="items:read"), json={"name": "x"})
    after = {reason: count(reason) for reason in REASONS}
    changed = {r: after[r] - before[r] for r in REASONS if after[r] != before[r]}
    assert changed == {"missing_token": 1, "malformed_token": 1, "expired": 1,
                       "insufficient_scope": 1}  # fmt: skip


def test_the_caller_reaches_the_access_log_and_the_token_does_not(
    issuer_app: Flask, issuer: LocalIssuer, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    token = issuer.mint(subject="alice@example.com")
    environ = EnvironBuilder(
        path="/api/v1/items", headers={"Authorization": f"Bearer {token}"}
    ).get_environ()
    status: list[str] = []
    body = issuer_app.wsgi_app(environ, lambda s, h, e=None: status.append(s))  # type: ignore[arg-type]
    b"".join(body)
    assert status[0].startswith("200") and environ[SUBJECT_KEY] == "alice@example.com"

    from gunicorn.config import Config

    monkeypatch.setenv("APP_ENV", "dev")  # gunicorn_conf reads the settings on import
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:b@127.0.0.1:9/x")
    from service.runtime.gunicorn_conf import JsonAccessLogger

    class Response:
        status_code = 200
        sent = 10
        headers = (("X-Request-ID", "rid"),)

    capsys.readouterr()
    JsonAccessLogger(Config()).access(Response, None, environ, timedelta(milliseconds=3))
    line = capsys.readouterr().out
    assert json.loads(line)["sub"] == "alice@example.com"
    assert token not in line and token.split(".")[1] not in line
