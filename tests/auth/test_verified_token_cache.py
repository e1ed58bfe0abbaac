"""The verified-token cache: bounded, and never serves a token past its exp."""

from __future__ import annotations

import time

import pytest

from service.auth.keys import KeySet
from service.auth.verify import LEEWAY_SECONDS, TokenVerifier
from tools.devtoken import SigningKey, jwks

ISSUER, AUDIENCE = "https://issuer.example", "items-api"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def signer() -> SigningKey:
    return SigningKey.generate("k1")


def verifier_for(signer: SigningKey, clock: Clock, cache_size: int = 3) -> TokenVerifier:
    keys = KeySet(ISSUER, jwks_url="https://issuer.example/jwks", fetch=lambda _: jwks(signer))
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, cache_size=cache_size, clock=clock)


def test_the_cache_is_bounded(signer: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = verifier_for(signer, Clock())
    for n in range(10):
        caller = verifier.verify(signer.mint(issuer=ISSUER, audience=AUDIENCE, subject=f"u{n}"))
        assert caller.subject == f"u{n}"
        assert len(verifier._verified) <= 3


def test_a_cached_token_is_checked_again_after_its_exp(
    signer: SigningKey, decodes: list[None]
) -> None:
    clock = Clock()
    verifier = verifier_for(signer, clock)
    token = signer.mint(issuer=ISSUER, audience=AUDIENCE, lifetime=100)
    verifier.verify(token)
    verifier.verify(token)
    assert len(decodes) == 1
    clock.now += 101 + LEEWAY_SECONDS  # past exp and its skew window: the cache lets go
    verifier.verify(token)  # PyJWT (real time) still accepts it here
    assert len(decodes) == 2
