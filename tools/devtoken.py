"""Mint a bearer token from a local key: development, tests, the benchmark and the kind e2e suite.

    python -m tools.devtoken --scope "items:read items:write"

creates .local/auth/dev-key.pem (once; ES256) and .local/auth/jwks.json (its public key),
and prints a token for issuer http://localhost and audience items-api. Run the service
with AUTH_ISSUER=http://localhost AUTH_AUDIENCE=items-api
AUTH_JWKS_FILE=.local/auth/jwks.json to accept it. Never point a deployed service at
this key: anyone with the file can mint tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_KEY = Path(".local/auth/dev-key.pem")
DEFAULT_ISSUER = "http://localhost"
DEFAULT_AUDIENCE = "items-api"
ALL_SCOPES = "items:read items:write"


@dataclass(frozen=True)
class SigningKey:
    """An ES256 private key and the `kid` its public half is published under."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def generate(cls, kid: str = "") -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, kid or _thumbprint(key))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC private key")
        return cls(key, _thumbprint(key))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created owner-only from the start: never world-readable, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key())
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def mint(
        self,
        *,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        scope: str = ALL_SCOPES,
        subject: str = "dev",
        lifetime: int = 3600,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {"iss": issuer, "aud": audience, "sub": subject, "scope": scope,
                   "iat": now, "exp": now + lifetime, **claims}  # fmt: skip
        return jwt.encode(payload, self.private_key, algorithm="ES256", headers={"kid": self.kid})


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in keys]}


def _thumbprint(key: ec.EllipticCurvePrivateKey) -> str:
    # Stable per key, so a restarted dev server and an old token agree on the kid.
    numbers = key.public_key().public_numbers()
    return f"dev-{numbers.x:x}"[:20]


def load_or_create(path: Path) -> SigningKey:
    if path.exists():
        return SigningKey.load(path)
    key = SigningKey.generate()
    key.save(path)
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.devtoken", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--key", type=Path, default=DEFAULT_KEY, help="private key file (created if missing)"
    )
    parser.add_argument(
        "--jwks-out",
        type=Path,
        help="where to write the public JWKS (default: jwks.json next to --key)",
    )
    parser.add_argument("--issuer", default=DEFAULT_ISSUER)
    parser.add_argument("--audience", default=DEFAULT_AUDIENCE)
    parser.add_argument("--scope", default=ALL_SCOPES, help='space-separated, e.g. "items:read"')
    parser.add_argument("--sub", default="dev", help="the caller's subject")
    parser.add_argument(
        "--lifetime", type=int, default=3600, help="seconds until the token expires"
    )
    args = parser.parse_args(argv)
    if args.lifetime < 1:
        parser.error("--lifetime must be at least 1 second")
    try:
        key = load_or_create(args.key)
    except (OSError, ValueError) as exc:
        parser.error(f"--key {args.key}: {exc}; delete it to create a new one")
    jwks_path = args.jwks_out or args.key.with_name("jwks.json")
    jwks_path.parent.mkdir(parents=True, exist_ok=True)
    jwks_path.write_text(json.dumps(jwks(key), indent=2) + "\n", encoding="utf-8")
    token = key.mint(issuer=args.issuer, audience=args.audience, scope=args.scope,
                     subject=args.sub, lifetime=args.lifetime)  # fmt: skip
    print(token)
    print(
        f"# accepted by: AUTH_ISSUER={args.issuer} AUTH_AUDIENCE={args.audience} "
        f"AUTH_JWKS_FILE={jwks_path}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
