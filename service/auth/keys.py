"""The issuer's signing keys: fetched lazily (discovery -> jwks_uri, or a file), cached per worker.

Startup never waits for the identity provider: the first request that needs a key fetches
the set. A token signed by a key we do not know (rotation) triggers a refetch, at most
once per REFETCH_SECONDS per worker, so a flood of forged `kid`s cannot hammer the issuer.
Every fetch has a short timeout, and a failed one keeps the keys we already have: an
issuer outage does not stop tokens signed by known keys.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from http.client import HTTPMessage
from pathlib import Path
from typing import Any, NamedTuple

import jwt

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 2.0
REFETCH_SECONDS = 30.0
# With no keys at all every request fails, but the issuer is still asked at most once per
# REFETCH_SECONDS per worker: a flood of tokens must not become a flood of fetches.
RETRY_WITHOUT_KEYS_SECONDS = REFETCH_SECONDS
MAX_DOCUMENT_BYTES = 1024 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"


class SigningKey(NamedTuple):
    key: Any  # a cryptography public key object
    algorithm: str | None  # the JWK's `alg`: when published, the only algorithm it signs with


class KeysUnavailableError(Exception):
    """No key set has ever been loaded and loading one failed; `retry_after` in seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _HttpsStaysHttps(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never from https to plain http: that would undo the rule that
    an https issuer's keys come over https."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise ValueError(f"{req.full_url} redirected to a non-https address")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpsStaysHttps)


def fetch_json(url: str, timeout: float = FETCH_TIMEOUT_SECONDS) -> Any:
    """GET a JSON document; a failure (network, status, size, syntax): OSError or ValueError."""
    # S310: the URL is https (or http on loopback), checked in service/config.py and above.
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with _OPENER.open(request, timeout=timeout) as response:
        body = response.read(MAX_DOCUMENT_BYTES + 1)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def parse_key_set(document: Any) -> dict[str, SigningKey]:
    """The signing keys of a JWKS document by `kid` ("" for a key without one).

    Keys PyJWT cannot use (an unknown type, an encryption key) are skipped, not fatal:
    providers publish keys for other purposes next to their signing keys.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document: expected a JSON object with a `keys` list")
    keys: dict[str, SigningKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") == "oct":  # a shared secret is never a signer we accept
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        algorithm = entry.get("alg")
        keys[str(entry.get("kid", ""))] = SigningKey(
            key.key, algorithm if isinstance(algorithm, str) else None
        )
    if not keys:
        raise ValueError("the JWKS document holds no usable signing key")
    return keys


class KeySet:
    """The signing keys of one issuer in one worker; thread-safe (gthread workers)."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_url: str = "",
        jwks_file: str = "",
        fetch: Callable[[str], Any] = fetch_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_url = jwks_url
        self.jwks_file = jwks_file
        self._fetch = fetch
        self.clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> SigningKey | None:
        """The key named `kid`, refetching the set (rate-limited) when it is not known.

        None: the issuer does not have such a key. KeysUnavailableError: no key set at all.
        """
        key = self._keys.get(kid)
        if key is not None:
            return key
        self._refresh()
        return self._keys.get(kid)

    def _refresh(self) -> None:
        with self._lock:
            now = self.clock()
            wait = REFETCH_SECONDS if self._keys else RETRY_WITHOUT_KEYS_SECONDS
            if self._last_attempt is not None and now - self._last_attempt < wait:
                if not self._keys:
                    raise KeysUnavailableError(
                        "no signing keys loaded yet", int(wait - (now - self._last_attempt)) + 1
                    )
                return
            self._last_attempt = now
            try:
                self._keys = parse_key_set(self._load())
            # Whatever the issuer did (network, status, HTTP framing, a document too deep or
            # malformed): keep the keys we have, and never let it become a 500.
            except Exception as exc:  # noqa: BLE001
                log.warning("could not load the issuer's signing keys: %s", _one_line(exc))
                if not self._keys:
                    raise KeysUnavailableError(str(exc), int(RETRY_WITHOUT_KEYS_SECONDS)) from None

    def _load(self) -> Any:
        if self.jwks_file:
            return json.loads(Path(self.jwks_file).read_bytes())
        if not self.jwks_url:
            discovery = self._fetch(self.issuer + DISCOVERY_PATH)
            jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
            # An https issuer's keys must come over https too; a loopback test issuer may use http.
            schemes = (
                ("https://",) if self.issuer.startswith("https://") else ("https://", "http://")
            )
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(schemes):
                raise ValueError("the issuer's discovery document has no usable `jwks_uri`")
            self.jwks_url = jwks_uri  # discovery is stable; later refreshes fetch the keys only
        return self._fetch(self.jwks_url)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
