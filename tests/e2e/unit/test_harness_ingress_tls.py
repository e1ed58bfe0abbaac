"""HTTPS by hostname to an address of our choosing, verified against the local CA only.

The server is a local HTTPS server with the certificate tools/localca.py issues for the
local cluster, exactly what the ingress serves from the TLS Secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.harness.ingress_client import ingress_session
from tests.e2e.unit.standins import RunningServer, serving
from tools.localca import LocalTLS, ensure_local_tls

# .invalid never resolves (RFC 2606): if a request to it succeeds, the test resolved it.
HOST = "app.e2e-harness.invalid"


@pytest.fixture(scope="module")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return ensure_local_tls(HOST, tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(local_tls: LocalTLS) -> Iterator[RunningServer]:
    with serving(tls=(local_tls.cert, local_tls.key)) as running:
        yield running


def test_hostname_is_resolved_inside_the_test_and_verified(
    local_tls: LocalTLS, https_server: RunningServer
) -> None:
    session = ingress_session(HOST, ca_bundle=local_tls.ca_cert)
    response = session.get(f"https://{HOST}:{https_server.port}/api/v1/items", timeout=10)
    assert response.status_code == 200
    assert response.json()["path"] == "/api/v1/items"
    # The ingress routes on both: the Host header and the TLS server name.
    assert https_server.script.hosts == [f"{HOST}:{https_server.port}"]
    assert https_server.sni_names == [HOST]


def test_without_the_adapter_the_name_does_not_resolve(
    local_tls: LocalTLS, https_server: RunningServer
) -> None:
    plain = requests.Session()
    plain.trust_env = False
    with pytest.raises(requests.ConnectionError):
        plain.get(f"https://{HOST}:{https_server.port}/", verify=str(local_tls.ca_cert), timeout=5)


def test_a_certificate_from_another_ca_is_refused(
    https_server: RunningServer, tmp_path: Path
) -> None:
    other_ca = ensure_local_tls(HOST, tmp_path / "other").ca_cert
    session = ingress_session(HOST, ca_bundle=other_ca)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(f"https://{HOST}:{https_server.port}/", timeout=5)
    assert https_server.script.requests == 0


def test_the_hostname_must_match_the_certificate(
    local_tls: LocalTLS, https_server: RunningServer
) -> None:
    # Same CA, same address, but a name the certificate was not issued for.
    other_host = "other.e2e-harness.invalid"
    session = ingress_session(other_host, ca_bundle=local_tls.ca_cert)
    with pytest.raises(requests.exceptions.SSLError, match="doesn't match"):
        session.get(f"https://{other_host}:{https_server.port}/", timeout=5)
    assert https_server.script.requests == 0


def test_the_system_trust_store_is_not_consulted(
    local_tls: LocalTLS, https_server: RunningServer, tmp_path: Path
) -> None:
    # A session for the local CA trusts nothing else, so a public CA cannot vouch for the
    # ingress (and the CA file must exist: a typo must not fall back to the system store).
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingress_session(HOST, ca_bundle=tmp_path / "missing-ca.crt")
    session = ingress_session(HOST, ca_bundle=local_tls.ca_cert)
    assert session.verify == str(local_tls.ca_cert)
    assert session.trust_env is False


def test_other_hosts_are_untouched(local_tls: LocalTLS, http_server: RunningServer) -> None:
    session = ingress_session(HOST, ca_bundle=local_tls.ca_cert)
    response = session.get(f"{http_server.url}/livez", timeout=5)
    assert response.json()["host"] == f"127.0.0.1:{http_server.port}"
