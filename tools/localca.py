"""A local certificate authority and one server certificate for the local cluster's hostname.

`python -m tools.localca --host app.localdev.me --out .local/tls` writes ca.crt, ca.key,
tls.crt and tls.key. Idempotent: a CA and a certificate that are still valid for the host
are reused, so a browser or OS that already trusts the CA keeps trusting it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOST = "app.localdev.me"
DEFAULT_OUT = Path(".local/tls")
CA_VALIDITY = dt.timedelta(days=5 * 365)
# 397 days is the longest lifetime browsers accept for a server certificate.
LEAF_VALIDITY = dt.timedelta(days=397)
# Reissue before expiry so a long-running cluster never serves an expired certificate.
RENEW_BEFORE = dt.timedelta(days=30)
# RFC 1123 hostname: dot-separated labels of letters, digits and inner hyphens.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)


class LocalCAError(Exception):
    """A bad argument or unusable file, with the fix in the message."""


@dataclass(frozen=True)
class LocalTLS:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    ca_created: bool
    cert_created: bool


def validate_host(host: str) -> str:
    host = host.strip().lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise LocalCAError(
            f"--host {host!r} is an IP address; give a DNS name such as {DEFAULT_HOST} "
            "(ingress routes by hostname)"
        )
    if host.startswith("*") or not _HOSTNAME.match(host) or "." not in host:
        raise LocalCAError(
            f"--host {host!r} is not a DNS hostname; give a name such as {DEFAULT_HOST} "
            "(letters, digits, hyphens, at least one dot, no wildcard)"
        )
    return host


def ensure_local_tls(host: str = DEFAULT_HOST, out: Path = DEFAULT_OUT) -> LocalTLS:
    """Reuse or create the CA and the server certificate for `host` under `out`."""
    host = validate_host(host)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    paths = {name: out / name for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
    now = dt.datetime.now(dt.UTC)

    ca = _load_pair(paths["ca.crt"], paths["ca.key"])
    ca_created = ca is None or not _ca_usable(ca[0], ca[1], host, now)
    if ca_created:
        ca = _new_ca(host, now)
        _write_pair(ca, paths["ca.crt"], paths["ca.key"])
    assert ca is not None

    leaf = None if ca_created else _load_pair(paths["tls.crt"], paths["tls.key"])
    cert_created = leaf is None or not _leaf_usable(leaf[0], leaf[1], ca[0], host, now)
    if cert_created:
        leaf = _new_leaf(host, ca[0], ca[1], now)
        _write_pair(leaf, paths["tls.crt"], paths["tls.key"])

    return LocalTLS(
        ca_cert=paths["ca.crt"],
        ca_key=paths["ca.key"],
        cert=paths["tls.crt"],
        key=paths["tls.key"],
        ca_created=ca_created,
        cert_created=cert_created,
    )


def trust_hint(ca_cert: Path) -> str:
    """How to make a browser, curl or the OS trust the local CA."""
    return (
        f"To trust the local CA ({ca_cert}):\n"
        f"  curl:   curl --cacert {ca_cert} https://<host>/livez\n"
        f"  Linux:  sudo cp {ca_cert} /usr/local/share/ca-certificates/app-local-ca.crt "
        "&& sudo update-ca-certificates\n"
        "  macOS:  sudo security add-trusted-cert -d -r trustRoot "
        f"-k /Library/Keychains/System.keychain {ca_cert}\n"
        "  Firefox keeps its own store: Settings > Certificates > Import.\n"
        "The CA is name-constrained to the local hostname: trusting it vouches for no other "
        "site. README.md (Local Kubernetes) says how to remove it again."
    )


Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _load_pair(cert_path: Path, key_path: Path) -> Pair | None:
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError:
        return None  # unreadable or foreign files are replaced, never trusted
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _ca_usable(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, host: str, now: dt.datetime
) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        names = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False
    permitted = [n.value for n in names.permitted_subtrees or [] if isinstance(n, x509.DNSName)]
    return constraints.ca and _fresh(cert, now) and any(_within(host, p) for p in permitted)


def _within(host: str, subtree: str) -> bool:
    return host == subtree or host.endswith("." + subtree)


def _leaf_usable(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    now: dt.datetime,
) -> bool:
    if cert.issuer != ca_cert.subject or not _fresh(cert, now):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return host in sans.get_values_for_type(x509.DNSName)


def _new_ca(host: str, now: dt.datetime) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "app local development"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"app local CA for {host}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # A developer adds this CA to their trust store; constraining it to the local
        # hostname means a leaked ca.key cannot mint certificates for any other site.
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(host)], excluded_subtrees=None),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(
    host: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write_pair(pair: Pair, cert_path: Path, key_path: Path) -> None:
    cert, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key file is created 0600 before any byte is written; never world-readable.
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localca", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"DNS name (default {DEFAULT_HOST})")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"directory (default {DEFAULT_OUT})"
    )
    parser.add_argument("--quiet", action="store_true", help="no trust hint")
    args = parser.parse_args(argv)
    try:
        tls = ensure_local_tls(args.host, args.out)
    except LocalCAError as exc:
        print(f"localca: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"localca: cannot write {args.out}: {exc.strerror}; pick a writable --out",
            file=sys.stderr,
        )
        return 1
    ca_state = "created" if tls.ca_created else "reused"
    cert_state = "created" if tls.cert_created else "reused"
    print(f"localca: CA {ca_state} ({tls.ca_cert})")
    print(f"localca: certificate for {args.host} {cert_state} ({tls.cert})")
    if tls.ca_created and not args.quiet:
        print(trust_hint(tls.ca_cert))
    return 0


if __name__ == "__main__":
    sys.exit(main())
