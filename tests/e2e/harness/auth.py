"""Access control in the e2e suite: a test key whose JWKS is mounted through `auth.jwks`.

The release then verifies tokens with no identity provider in the cluster (AUTH_JWKS_FILE),
and the suite mints tokens with any scope from the private half, which never leaves it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from tools.devtoken import SigningKey, jwks

ISSUER = "https://issuer.e2e.invalid"  # never contacted: the keys are mounted
AUDIENCE = "items-api"
SECRET = "app-e2e-jwks"
SECRET_KEY = "jwks.json"


@dataclass(frozen=True)
class E2EIssuer:
    key: SigningKey = field(default_factory=lambda: SigningKey.generate("e2e"))

    def secret_manifest(self, namespace: str) -> dict[str, Any]:
        """The Secret `auth.jwks.secretName` names (public keys only, kept in a Secret as
        an operator would keep a provider's exported keys)."""
        document = json.dumps(jwks(self.key)).encode()
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": namespace},
            "type": "Opaque",
            "data": {SECRET_KEY: base64.b64encode(document).decode()},
        }

    def helm_values(self) -> dict[str, str]:
        """--set values turning access control on with the mounted keys."""
        return {
            "auth.issuer": ISSUER,
            "auth.audience": AUDIENCE,
            "auth.jwks.secretName": SECRET,
            "auth.jwks.key": SECRET_KEY,
        }

    def token(self, scope: str, *, subject: str = "e2e", lifetime: int = 900) -> str:
        return self.key.mint(
            issuer=ISSUER, audience=AUDIENCE, scope=scope, subject=subject, lifetime=lifetime
        )

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope)}"}
