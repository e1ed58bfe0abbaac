"""Tokens against a real local issuer: the good one passes, every bad one gets 401 (RFC 6750)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client import REGISTRY

from tests.auth.issuer import AUDIENCE, LocalIssuer
from tools.devtoken import SigningKey

ITEMS = "/api/v1/items"
Call = Callable[..., Any]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An HS256 token made by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(issuer: LocalIssuer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer.url, "aud": AUDIENCE, "sub": "mallory", "scope": "items:read",
            "iat": now, "exp": now + 300, **changes}  # fmt: skip


def test_a_valid_token_reads_and_writes(call: Call, issuer: LocalIssuer) -> None:
    token = issuer.mint(scope="items:read items:write")
    created = call("POST", ITEMS, token, json={"name": "with-a-token"})
    assert created.status_code == 201, created.get_json()
    assert call("GET", created.headers["Location"], token).status_code == 200
    assert call("GET", ITEMS, token).status_code == 200


def test_no_token_gets_a_challenge_without_an_error(call: Call) -> None:
    response = call("GET", ITEMS)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="items"'
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["Content-Type"] == "application/json"


def test_unknown_api_paths_need_a_token_too(call: Call) -> None:
    """No probing what exists without a token."""
    assert call("GET", "/api/v2/secrets").status_code == 401
    assert call("DELETE", "/api").status_code == 401
    # As a server passes `GET //api/v1/items` (the test client would read `//api` as a host).
    doubled = call("GET", "/", environ_overrides={"PATH_INFO": "//api/v1/items"})
    assert doubled.status_code == 401


def bad_tokens(issuer: LocalIssuer) -> dict[str, str]:
    now = int(time.time())
    stranger = SigningKey.generate("key-1")  # the issuer's kid, not the issuer's key
    unknown = SigningKey.generate("nobody-knows-me")
    signer = issuer.signer
    public_pem = signer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    no_exp = claims(issuer)
    del no_exp["exp"]
    valid = issuer.mint()
    head, _, signature = valid.split(".")
    tampered_body = b64(json.dumps(claims(issuer, scope="items:read items:write")).encode())
    tokens = {
        "malformed": "not-a-jwt",
        "three garbage segments": "a.b.c",
        "tampered claims": f"{head}.{tampered_body}.{signature}",
        "bad signature (another key, same kid)": issuer.mint(stranger),
        "unknown signer": issuer.mint(unknown),
        "wrong issuer": issuer.mint(issuer="https://evil.example.com"),
        "issuer with a trailing slash": issuer.mint(issuer=issuer.url + "/"),
        "wrong audience": issuer.mint(audience="another-api"),
        "expired beyond the leeway": issuer.mint(lifetime=-120),
        "not yet valid beyond the leeway": issuer.mint(nbf=now + 600),
        "issued in the future beyond the leeway": issuer.mint(iat=now + 600),
        "no exp": jwt.encode(no_exp, signer.private_key, "ES256", {"kid": signer.kid}),
        "alg none": jwt.encode(claims(issuer), None, "none", {"kid": signer.kid}),
        "HS256 with a random secret": jwt.encode(
            claims(issuer), "s" * 32, "HS256", {"kid": signer.kid}
        ),
        "HS256 with the public key as secret": hand_signed_hs256(
            public_pem, {"alg": "HS256", "typ": "JWT", "kid": signer.kid}, claims(issuer)
        ),
        "HS256 with the JWK as secret": hand_signed_hs256(
            json.dumps(signer.public_jwk()).encode(),
            {"alg": "HS256", "typ": "JWT", "kid": signer.kid},
            claims(issuer),
        ),
        "RS256 header on an EC key": hand_signed_hs256(
            b"x", {"alg": "RS256", "typ": "JWT", "kid": signer.kid}, claims(issuer)
        ),
    }
    assert tokens.keys() == REASON.keys()
    return tokens


# Why each is refused: the auth_failures_total label, so a test fails when a token is
# refused for the wrong reason (e.g. HS256 only stopped by PyJWT's own key checks).
REASON = {
    "malformed": "malformed_token",
    "three garbage segments": "malformed_token",
    "tampered claims": "bad_signature",
    "bad signature (another key, same kid)": "bad_signature",
    "unknown signer": "unknown_key",
    "wrong issuer": "invalid_claims",
    "issuer with a trailing slash": "invalid_claims",
    "wrong audience": "invalid_claims",
    "expired beyond the leeway": "expired",
    "not yet valid beyond the leeway": "invalid_claims",
    "issued in the future beyond the leeway": "invalid_claims",
    "no exp": "invalid_claims",
    "alg none": "disallowed_algorithm",
    "HS256 with a random secret": "disallowed_algorithm",
    "HS256 with the public key as secret": "disallowed_algorithm",
    "HS256 with the JWK as secret": "disallowed_algorithm",
    "RS256 header on an EC key": "disallowed_algorithm",
}


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("auth_failures_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize("case", list(REASON))
def test_bad_tokens_get_401_invalid_token(call: Call, issuer: LocalIssuer, case: str) -> None:
    token = bad_tokens(issuer)[case]
    before = failures(REASON[case])
    response = call("GET", ITEMS, token)
    assert response.status_code == 401, (case, response.get_json())
    assert failures(REASON[case]) == before + 1, case
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="items", error="invalid_token"'), challenge
    error = response.get_json()["error"]
    assert error["code"] == "invalid_token" and error["message"]
    assert token not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "Bearer two tokens", "bearer"]
)
def test_malformed_authorization_headers_get_401(call: Call, header: str) -> None:
    response = call("GET", ITEMS, headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_leeway_accepts_a_token_that_expired_seconds_ago(call: Call, issuer: LocalIssuer) -> None:
    assert call("GET", ITEMS, issuer.mint(lifetime=-20)).status_code == 200
    assert call("GET", ITEMS, issuer.mint(nbf=int(time.time()) + 20)).status_code == 200


def test_the_bearer_scheme_is_case_insensitive(call: Call, issuer: LocalIssuer) -> None:
    response = call("GET", ITEMS, headers={"Authorization": f"bearer {issuer.mint()}"})
    assert response.status_code == 200


def test_a_read_token_cannot_write(call: Call, issuer: LocalIssuer) -> None:
    token = issuer.mint(scope="items:read")
    for method, path in [("POST", ITEMS), ("PATCH", f"{ITEMS}/1"), ("DELETE", f"{ITEMS}/1")]:
        response = call(method, path, token, json={"name": "x"})
        assert response.status_code == 403, method
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="items", error="insufficient_scope", '
            'error_description="The token lacks the scope items:write.", scope="items:write"'
        )
        assert response.get_json()["error"]["code"] == "insufficient_scope"


def test_a_write_only_token_cannot_read(call: Call, issuer: LocalIssuer) -> None:
    response = call("GET", ITEMS, issuer.mint(scope="items:write"))
    assert response.status_code == 403
    assert 'scope="items:read"' in response.headers["WWW-Authenticate"]


def test_scopes_from_an_scp_list(call: Call, issuer: LocalIssuer) -> None:
    token = issuer.mint(scope=None, scp=["items:read", "items:write"])
    assert call("POST", ITEMS, token, json={"name": "scp"}).status_code == 201
    assert call("POST", ITEMS, issuer.mint(scope=None, scp=["items:read"])).status_code == 403


def test_a_token_without_scopes_is_refused(call: Call, issuer: LocalIssuer) -> None:
    assert call("GET", ITEMS, issuer.mint(scope=None)).status_code == 403


def test_an_oversized_authorization_header_gets_a_4xx(call: Call) -> None:
    for size in (9000, 100_000):
        response = call("GET", ITEMS, headers={"Authorization": "Bearer " + "a" * size})
        assert 400 <= response.status_code < 500, size


def test_probes_metrics_and_the_openapi_document_are_public(call: Call) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/openapi.json"):
        assert call("GET", path).status_code == 200, path
