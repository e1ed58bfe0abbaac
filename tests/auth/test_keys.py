"""Keys from a real issuer: fetched lazily, rotated, refetched at most once per 30 s, kept
through an outage; with no keys at all, 503 auth_unavailable with Retry-After."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.client import HTTPMessage
from typing import Any

import psycopg
import pytest

from service import create_app
from service.auth import keys
from service.config import AuthSettings, Settings
from service.store.database import get_db
from tests.auth.conftest import FakeClock
from tests.auth.issuer import AUDIENCE, LocalIssuer
from tools.devtoken import SigningKey

ITEMS = "/api/v1/items"
Call = Callable[..., Any]


def test_startup_fetches_nothing(call: Call, issuer: LocalIssuer) -> None:
    assert issuer.hits == {"discovery": 0, "jwks": 0}
    assert call("GET", ITEMS, issuer.mint()).status_code == 200
    assert issuer.hits == {"discovery": 1, "jwks": 1}


def test_a_reused_token_is_verified_once(
    call: Call, issuer: LocalIssuer, decodes: list[None]
) -> None:
    token = issuer.mint()
    for _ in range(5):
        assert call("GET", ITEMS, token).status_code == 200
    assert len(decodes) == 1
    assert call("GET", ITEMS, issuer.mint(subject="bob")).status_code == 200
    assert len(decodes) == 2


def test_keys_rotated_at_the_issuer_are_picked_up(
    call: Call, issuer: LocalIssuer, clock: FakeClock
) -> None:
    retired = issuer.signer
    verified_before = issuer.mint()
    assert call("GET", ITEMS, verified_before).status_code == 200
    new_key = issuer.rotate("key-2")
    clock.advance(keys.REFETCH_SECONDS + 1)
    assert call("GET", ITEMS, issuer.mint(new_key)).status_code == 200
    assert issuer.hits["jwks"] == 2 and issuer.hits["discovery"] == 1  # jwks_uri is kept
    # The retired key signs nothing new; a token verified before stays valid until its exp.
    assert call("GET", ITEMS, issuer.mint(retired, subject="late")).status_code == 401
    assert call("GET", ITEMS, verified_before).status_code == 200


def test_unknown_kids_refetch_at_most_once_per_30_seconds(
    call: Call, issuer: LocalIssuer, clock: FakeClock
) -> None:
    assert call("GET", ITEMS, issuer.mint()).status_code == 200
    assert issuer.hits["jwks"] == 1
    for n in range(50):  # a flood of forged kids
        forged = issuer.mint(SigningKey.generate(f"forged-{n}"))
        response = call("GET", ITEMS, forged)
        assert response.status_code == 401
    assert issuer.hits["jwks"] == 1  # the set was fetched just now: no refetch for 30 s
    clock.advance(keys.REFETCH_SECONDS + 1)
    assert call("GET", ITEMS, issuer.mint(SigningKey.generate("forged-late"))).status_code == 401
    assert issuer.hits["jwks"] == 2


def test_cached_keys_keep_working_while_the_issuer_is_down(
    call: Call, issuer: LocalIssuer, clock: FakeClock
) -> None:
    assert call("GET", ITEMS, issuer.mint()).status_code == 200
    issuer.stop()
    clock.advance(keys.REFETCH_SECONDS + 1)
    # A new token from a known key: no fetch needed. An unknown kid: the fetch fails, the
    # keys stay, the answer is 401, never 5xx.
    assert call("GET", ITEMS, issuer.mint(subject="new-token")).status_code == 200
    assert call("GET", ITEMS, issuer.mint(SigningKey.generate("k9"))).status_code == 401
    assert call("GET", ITEMS, issuer.mint(subject="still")).status_code == 200
    issuer.start()  # back on the same port
    rotated = issuer.rotate("key-3")
    clock.advance(keys.REFETCH_SECONDS + 1)
    assert call("GET", ITEMS, issuer.mint(rotated)).status_code == 200


def test_no_keys_at_all_is_503_with_retry_after(
    call: Call, issuer: LocalIssuer, clock: FakeClock
) -> None:
    issuer.stop()
    token = issuer.mint()
    response = call("GET", ITEMS, token)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "auth_unavailable"
    assert 1 <= int(response.headers["Retry-After"]) <= keys.RETRY_WITHOUT_KEYS_SECONDS
    # Within the retry interval the issuer is not asked again; still 503, not 500.
    issuer.start()
    again = call("GET", ITEMS, token)
    assert again.status_code == 503 and int(again.headers["Retry-After"]) >= 1
    assert issuer.hits["jwks"] == 0
    clock.advance(keys.RETRY_WITHOUT_KEYS_SECONDS)
    assert call("GET", ITEMS, token).status_code == 200


@pytest.fixture
def silent_issuer() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_hanging_issuer_times_out_into_a_503(
    settings: Settings, connection: psycopg.Connection[Any], silent_issuer: str
) -> None:
    assert keys.FETCH_TIMEOUT_SECONDS <= 2
    app = create_app(replace(settings, auth=AuthSettings(silent_issuer, AUDIENCE)))
    get_db(app).bind_to(connection)
    token = SigningKey.generate("k").mint(issuer=silent_issuer, audience=AUDIENCE)
    response = app.test_client().get(ITEMS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.headers["Retry-After"]


def test_keys_from_a_file_need_no_issuer_at_all(
    protected_app: Any, bearer: Callable[..., dict[str, str]]
) -> None:
    """AUTH_JWKS_FILE (air-gapped clusters, the e2e suite): tests/conftest.py's issuer does
    not even resolve."""
    client = protected_app.test_client()
    assert client.get(ITEMS, headers=bearer()).status_code == 200
    assert client.get(ITEMS).status_code == 401


def test_discovery_without_a_usable_jwks_uri_is_unavailable(clock: FakeClock) -> None:
    documents = {"https://idp.example/.well-known/openid-configuration": {"issuer": "x"}}
    key_set = keys.KeySet("https://idp.example", fetch=documents.__getitem__, clock=clock)
    with pytest.raises(keys.KeysUnavailableError):
        key_set.key_for("any")
    documents["https://idp.example/.well-known/openid-configuration"] = {
        "jwks_uri": "http://idp.example/jwks"  # an https issuer's keys over http: refused
    }
    clock.advance(keys.RETRY_WITHOUT_KEYS_SECONDS)
    with pytest.raises(keys.KeysUnavailableError):
        key_set.key_for("any")


def test_unusable_entries_in_a_key_set_are_skipped() -> None:
    good = SigningKey.generate("good").public_jwk()
    hmac_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}
    encryption_key = {**good, "kid": "enc", "use": "enc"}
    document = {"keys": [hmac_key, encryption_key, {"kty": "nonsense"}, "x", good]}
    assert list(keys.parse_key_set(document)) == ["good"]
    with pytest.raises(ValueError, match="no usable signing key"):
        keys.parse_key_set({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})


@pytest.fixture
def garbage_issuer() -> Iterator[str]:
    """A loopback listener that answers every connection with bytes that are not HTTP."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                peer, _ = listener.accept()
            except OSError:
                continue
            with peer:
                peer.recv(4096)
                peer.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_an_issuer_that_does_not_speak_http_is_a_503_not_a_500(
    settings: Settings, connection: psycopg.Connection[Any], garbage_issuer: str
) -> None:
    # urllib raises http.client.BadStatusLine here, which is neither an OSError nor a
    # ValueError: it must still become auth_unavailable.
    app = create_app(replace(settings, auth=AuthSettings(garbage_issuer, AUDIENCE)))
    get_db(app).bind_to(connection)
    token = SigningKey.generate("k").mint(issuer=garbage_issuer, audience=AUDIENCE)
    response = app.test_client().get(ITEMS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "auth_unavailable"


def test_a_redirect_from_https_to_http_is_refused() -> None:
    handler = keys._HttpsStaysHttps()
    request = urllib.request.Request("https://issuer.example.com/jwks")
    with pytest.raises(ValueError, match="non-https"):
        handler.redirect_request(
            request, None, 302, "Found", HTTPMessage(), "http://issuer.example.com/jwks"
        )
    followed = handler.redirect_request(
        request, None, 302, "Found", HTTPMessage(), "https://keys.example.com/jwks"
    )
    assert followed is not None and followed.full_url == "https://keys.example.com/jwks"


def test_a_token_inside_the_skew_window_is_verified_once(
    call: Call, issuer: LocalIssuer, decodes: list[None]
) -> None:
    token = issuer.mint(lifetime=-20)  # expired 20 s ago, inside the 60 s leeway
    for _ in range(3):
        assert call("GET", ITEMS, token).status_code == 200
    assert len(decodes) == 1
