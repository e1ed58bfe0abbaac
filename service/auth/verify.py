"""A bearer token checked once: signature (asymmetric only), exp, iss, aud; then cached until exp.

PyJWT does the cryptography and the claim checks; this module only picks the key by
`kid`, pins the algorithm list, and maps each failure to one of a few reasons (the
`auth_failures_total` label). A verified token is remembered (bounded, until its `exp`),
so a client that reuses its token pays for one signature check, not one per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from service.auth.keys import KeySet, SigningKey
from service.auth.scopes import ADMIN
from service.store.owners import Scope, refusal

# Asymmetric signatures only: never HS* (anyone holding the public key could sign) or none.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)
# The key type each algorithm family signs with: a token never picks how its key is used.
KEY_TYPES: dict[str, tuple[type, ...]] = {
    "RS": (rsa.RSAPublicKey,),
    "PS": (rsa.RSAPublicKey,),
    "ES": (ec.EllipticCurvePublicKey,),
    "Ed": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}
LEEWAY_SECONDS = 60
CACHE_SIZE = 4096
MAX_TOKEN_CHARS = 8192

# The fixed set of failure reasons (metric label values; never anything a client chose).
MISSING = "missing_token"
MALFORMED = "malformed_token"
ALGORITHM = "disallowed_algorithm"
UNKNOWN_KEY = "unknown_key"
SIGNATURE = "bad_signature"
EXPIRED = "expired"
CLAIMS = "invalid_claims"  # iss, aud, nbf, iat, a missing exp, or no owner it may act as
SCOPE = "insufficient_scope"
UNAVAILABLE = "keys_unavailable"
REASONS = (MISSING, MALFORMED, ALGORITHM, UNKNOWN_KEY, SIGNATURE, EXPIRED, CLAIMS, SCOPE,
           UNAVAILABLE)  # fmt: skip


class InvalidTokenError(Exception):
    """The token is not acceptable; `reason` is one of REASONS, the message safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a verified token speaks for, and what it may do: its scopes, and whose rows it
    reaches (`scope`: its own, or every owner's with items:admin), worked out once per token."""

    subject: str
    scopes: frozenset[str]
    expires_at: float
    scope: Scope


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """`scope` (space-separated, RFC 8693/9068) or `scp` (a list, as Entra ID and Okta send)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    if isinstance(scp, str):
        return frozenset(scp.split())
    return frozenset()


class TokenVerifier:
    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        owner_claim: str = "sub",
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.owner_claim = owner_claim
        self.cache_size = cache_size
        self._clock = clock
        self._verified: dict[str, Caller] = {}
        self._insert_lock = threading.Lock()

    def verify(self, token: str) -> Caller:
        """The caller a token speaks for; raises InvalidTokenError or keys.KeysUnavailableError."""
        # The hot path: a token seen before costs a dict lookup and a clock read.
        caller = self._verified.get(token)
        if caller is not None and self._clock() < caller.expires_at:
            return caller
        caller = self._verify_signature_and_claims(token)
        self._remember(token, caller)
        return caller

    def _verify_signature_and_claims(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError(
                MALFORMED, f"The token is longer than {MAX_TOKEN_CHARS} characters."
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError(MALFORMED, "The token is not a well-formed JWT.") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidTokenError(
                ALGORITHM, "The token's algorithm is not accepted (asymmetric signatures only)."
            )
        kid = header.get("kid", "")
        key = self.keys.key_for(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidTokenError(
                UNKNOWN_KEY, "The token is signed by a key this API does not know."
            )
        # A key published for one algorithm is used for that algorithm only.
        fits = isinstance(key.key, KEY_TYPES[algorithm[:2]])
        if not fits or (key.algorithm is not None and key.algorithm != algorithm):
            raise InvalidTokenError(ALGORITHM, "The token's algorithm does not match its key.")
        claims = self._decode(token, key, algorithm)
        subject = claims.get("sub")
        owner = claims.get(self.owner_claim)
        if not isinstance(owner, str):
            why: str | None = "is missing or not a string"
        else:
            why = refusal(owner)
        if why is not None or not isinstance(owner, str):
            raise InvalidTokenError(
                CLAIMS, f"The token's `{self.owner_claim}` claim {why}: it cannot own rows here."
            )
        scopes = scopes_of(claims)
        return Caller(
            subject=subject if isinstance(subject, str) else "",
            scopes=scopes,
            # Accepted until `exp` plus the clock-skew leeway jwt.decode allowed it, so a
            # token inside that window is verified once, not on every request.
            expires_at=float(claims["exp"]) + LEEWAY_SECONDS,
            scope=Scope.admin(owner) if ADMIN in scopes else Scope.of(owner),
        )

    def _decode(self, token: str, key: SigningKey, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"], "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError(EXPIRED, "The token has expired.") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError(SIGNATURE, "The token's signature is invalid.") from None
        except (
            jwt.InvalidAudienceError,
            jwt.InvalidIssuerError,
            jwt.ImmatureSignatureError,
            jwt.InvalidIssuedAtError,
            jwt.MissingRequiredClaimError,
        ) as exc:
            raise InvalidTokenError(CLAIMS, f"The token is not valid here: {exc}.") from None
        except (jwt.PyJWTError, ValueError, TypeError):  # e.g. an EC token against an RSA key
            raise InvalidTokenError(MALFORMED, "The token cannot be verified.") from None
        return claims

    def _remember(self, token: str, caller: Caller) -> None:
        with self._insert_lock:
            if len(self._verified) >= self.cache_size:
                # Expired entries first; if none, the oldest (dicts keep insertion order).
                now = self._clock()
                expired = [t for t, c in self._verified.items() if c.expires_at <= now]
                for stale in expired or [next(iter(self._verified))]:
                    self._verified.pop(stale, None)
            self._verified[token] = caller
