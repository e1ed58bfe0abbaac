"""AUTH_* settings: secure by default outside dev, one clear line for every mistake."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from service import create_app
from service.config import AuthSettings, ConfigError, Settings

ROOT = Path(__file__).parents[2]
URL = "postgresql://app:pw@db.example:5432/app?sslmode=verify-full"
ISSUER = {"AUTH_ISSUER": "https://login.example.com/realms/items", "AUTH_AUDIENCE": "items-api"}


def settings(**env: str) -> Settings:
    """Settings as `serve` checks them (the migrator does not ask about access control)."""
    parsed = Settings.from_env({"DATABASE_URL": URL, **env})
    parsed.refuse_anonymous_api()
    return parsed


def error_for(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(**env)
    return str(caught.value)


@pytest.mark.parametrize("app_env", ["staging", "prod"])
def test_staging_and_prod_refuse_to_start_without_an_issuer(app_env: str) -> None:
    message = error_for(APP_ENV=app_env)
    assert "\n" not in message
    for name in ("AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_DISABLED"):
        assert name in message


def test_serve_prints_that_one_line_and_exits() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "APP_"))}
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env={**env, "APP_ENV": "staging", "DATABASE_URL": URL},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = (result.stdout + result.stderr).strip().splitlines()
    message = json.loads(line)["message"]
    assert message.startswith("AUTH_ISSUER is not set with APP_ENV=staging")


def test_the_migrator_needs_no_issuer() -> None:
    """`migrate` and `wait-for-schema` parse the same settings but serve no API."""
    assert not Settings.from_env({"DATABASE_URL": URL, "APP_ENV": "prod"}).auth.enabled


def test_an_app_is_never_built_open_outside_dev(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="AUTH_ISSUER is not set with APP_ENV=prod"):
        create_app(replace(settings, app_env="prod"))


def test_an_issuer_with_its_audience_turns_access_control_on() -> None:
    auth = settings(APP_ENV="prod", **ISSUER).auth
    assert auth.enabled and auth.audience == "items-api"


def test_disabled_on_purpose_starts_without_an_issuer() -> None:
    auth = settings(APP_ENV="prod", AUTH_DISABLED="true").auth
    assert auth.disabled and not auth.enabled


def test_dev_without_an_issuer_is_anonymous() -> None:
    assert not settings(APP_ENV="dev").auth.enabled


def test_an_issuer_without_an_audience_is_refused() -> None:
    message = error_for(AUTH_ISSUER=ISSUER["AUTH_ISSUER"])
    assert message.startswith("AUTH_AUDIENCE is not set")


@pytest.mark.parametrize(
    "url",
    ["http://login.example.com", "http://10.0.0.5:8080", "ftp://login.example.com",
     "login.example.com", "https://", "http://[::ffff:10.0.0.1]"],
)  # fmt: skip
def test_an_issuer_must_be_https_except_on_loopback(url: str) -> None:
    message = error_for(AUTH_ISSUER=url, AUTH_AUDIENCE="a")
    assert message.startswith("AUTH_ISSUER=") and "https://" in message and "loopback" in message
    assert error_for(AUTH_JWKS_URL=url, **ISSUER).startswith("AUTH_JWKS_URL=")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://127.8.9.10", "http://[::1]:9000", "http://localhost"]
)
def test_plain_http_is_accepted_on_loopback(url: str) -> None:
    assert settings(AUTH_ISSUER=url, AUTH_AUDIENCE="a").auth.issuer == url


def test_an_unreadable_jwks_file_is_refused(tmp_path: Path) -> None:
    message = error_for(AUTH_JWKS_FILE=str(tmp_path / "missing.json"), **ISSUER)
    assert message.startswith("AUTH_JWKS_FILE=") and "cannot be read" in message


def test_a_malformed_auth_disabled_names_the_form() -> None:
    assert error_for(AUTH_DISABLED="sometimes").startswith("AUTH_DISABLED='sometimes' is invalid")


def test_dev_anonymous_mode_says_so_once_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.auth"):
        app = create_app(settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "service.auth"]
    assert len(lines) == 1 and "anonymous" in lines[0] and "AUTH_ISSUER" in lines[0]
    # Anonymous: the request reaches the route (whatever rows the shared database holds).
    assert app.test_client().get("/api/v1/items/1").status_code in (200, 404)


def test_disabled_says_so_once_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.auth"):
        create_app(replace(settings, app_env="prod", auth=AuthSettings(disabled=True)))
    lines = [r.getMessage() for r in caplog.records if r.name == "service.auth"]
    assert len(lines) == 1 and lines[0].startswith("AUTH_DISABLED=true")


def test_the_owner_claim_is_sub_unless_auth_owner_claim_names_another() -> None:
    assert settings(**ISSUER).auth.owner_claim == "sub"
    assert settings(AUTH_OWNER_CLAIM=" tenant_id ", **ISSUER).auth.owner_claim == "tenant_id"
    namespaced = "https://example.com/tenant"
    assert settings(AUTH_OWNER_CLAIM=namespaced, **ISSUER).auth.owner_claim == namespaced


@pytest.mark.parametrize("claim", ["tenant id", "tab\there", "x" * 257])
def test_an_owner_claim_that_is_no_claim_name_is_refused(claim: str) -> None:
    message = error_for(AUTH_OWNER_CLAIM=claim, **ISSUER)
    assert message.startswith("AUTH_OWNER_CLAIM=") and "is invalid" in message
    assert "tenant_id" in message and "\n" not in message


@pytest.mark.parametrize("claim", ["aud", "iss", "jti", "exp", "scope"])
def test_an_owner_claim_that_cannot_tell_callers_apart_is_refused(claim: str) -> None:
    """`aud` would put every caller's rows in one heap; `jti` would lose them."""
    message = error_for(AUTH_OWNER_CLAIM=claim, **ISSUER)
    assert message.startswith(f"AUTH_OWNER_CLAIM={claim} cannot name an owner")
