"""The local CA and certificate: right SAN, a verifying chain, idempotent, usable by TLS clients."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tools.localca import LocalCAError, ensure_local_tls, main, validate_host

HOST = "app.localdev.me"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    ensure_local_tls(HOST, out)
    return out


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificate_names_the_host_and_is_a_server_leaf(tls_dir: Path) -> None:
    cert = load(tls_dir / "tls.crt")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOST]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usages
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 398


def test_chain_verifies_with_cryptography(tls_dir: Path) -> None:
    ca, leaf = load(tls_dir / "ca.crt"), load(tls_dir / "tls.crt")
    leaf.verify_directly_issued_by(ca)  # raises on a bad signature or issuer mismatch
    verifier = (
        x509.verification.PolicyBuilder()
        .store(x509.verification.Store([ca]))
        .build_server_verifier(x509.DNSName(HOST))
    )
    chain = verifier.verify(leaf, [])
    assert chain[-1] == ca


def test_chain_verifies_with_openssl(tls_dir: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found (install it with: apt-get install openssl)")
    result = subprocess.run(
        [openssl, "verify", "-CAfile", str(tls_dir / "ca.crt"), str(tls_dir / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_ca_is_constrained_to_the_host(tls_dir: Path) -> None:
    ca = load(tls_dir / "ca.crt")
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName(HOST)]
    # A certificate for another site signed by this CA is rejected by verifiers.
    verifier = (
        x509.verification.PolicyBuilder()
        .store(x509.verification.Store([ca]))
        .build_server_verifier(x509.DNSName("example.com"))
    )
    with pytest.raises(x509.verification.VerificationError):
        verifier.verify(load(tls_dir / "tls.crt"), [])


def test_private_keys_are_owner_only(tls_dir: Path) -> None:
    for name in ("ca.key", "tls.key"):
        assert stat.S_IMODE((tls_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700


def test_second_run_reuses_both_files_byte_for_byte(tmp_path: Path) -> None:
    first = ensure_local_tls(HOST, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = ensure_local_tls(HOST, tmp_path)
    assert (first.ca_created, first.cert_created) == (True, True)
    assert (second.ca_created, second.cert_created) == (False, False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_missing_leaf_is_reissued_from_the_existing_ca(tmp_path: Path) -> None:
    ensure_local_tls(HOST, tmp_path)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    (tmp_path / "tls.key").unlink()
    again = ensure_local_tls(HOST, tmp_path)
    assert (again.ca_created, again.cert_created) == (False, True)
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    load(tmp_path / "tls.crt").verify_directly_issued_by(load(tmp_path / "ca.crt"))


def test_other_host_gets_a_new_ca_because_the_old_one_cannot_sign_it(tmp_path: Path) -> None:
    ensure_local_tls(HOST, tmp_path)
    other = ensure_local_tls("api.localdev.me", tmp_path)
    assert other.ca_created
    assert other.cert_created
    sans = load(tmp_path / "tls.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sans.value.get_values_for_type(x509.DNSName) == ["api.localdev.me"]


def test_garbage_files_are_replaced_not_trusted(tmp_path: Path) -> None:
    ensure_local_tls(HOST, tmp_path)
    (tmp_path / "ca.crt").write_text("not a certificate")
    again = ensure_local_tls(HOST, tmp_path)
    assert again.ca_created
    load(tmp_path / "tls.crt").verify_directly_issued_by(load(tmp_path / "ca.crt"))


@pytest.mark.parametrize("host", ["10.0.0.1", "*.localdev.me", "no_underscore.dev", "local", ""])
def test_bad_hosts_are_refused_with_an_example(host: str) -> None:
    with pytest.raises(LocalCAError, match=r"app\.localdev\.me"):
        validate_host(host)


def test_cli_bad_host_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--host", "1.2.3.4", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "IP address" in err
    assert not any(tmp_path.iterdir())


def test_cli_module_entrypoint_writes_the_four_files(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = subprocess.run(
        [sys.executable, "-m", "tools.localca", "--host", HOST, "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert "To trust the local CA" in result.stdout


@pytest.fixture
def https_server(tls_dir: Path) -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello over tls"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "tls.crt", tls_dir / "tls.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_python_ssl_verifies_a_live_https_server_against_the_ca(
    https_server: int, tls_dir: Path
) -> None:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", https_server), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: app.localdev.me\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.")
    assert response.endswith(b"hello over tls")


def test_python_ssl_rejects_the_server_under_another_name(https_server: int, tls_dir: Path) -> None:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", https_server), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="example.com")


def test_python_ssl_rejects_the_server_without_the_ca(https_server: int) -> None:
    with pytest.raises(urllib.error.URLError) as excinfo:
        urllib.request.urlopen(f"https://127.0.0.1:{https_server}/", timeout=5)
    assert isinstance(excinfo.value.reason, ssl.SSLCertVerificationError)
