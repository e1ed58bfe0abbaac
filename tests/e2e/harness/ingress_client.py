"""HTTPS to the ingress by its real hostname, with the address chosen by the test.

The ingress answers on 127.0.0.1 (kind maps 80/443 there), but the certificate, SNI and
the ingress rule are all for the hostname (e.g. app.localdev.me). Rather than editing
/etc/hosts or trusting public DNS, the adapter below connects to the given address while
TLS still sends the hostname as SNI, verifies the certificate chain against the local CA
and checks the hostname against the certificate, and HTTP sends it as the Host header.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from tests.e2e.harness.waiting import NotYet, answered, wait_until


class ResolveToAdapter(HTTPAdapter):
    """Send requests for `hostname` to `address`; nothing else about them changes."""

    def __init__(self, hostname: str, address: str, **kwargs: Any) -> None:
        self.hostname = hostname.lower()
        self.address = address
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        parent = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params: dict[str, Any] = dict(parent[0])
        pool_kwargs: dict[str, Any] = dict(parent[1])
        if str(host_params["host"]).lower() == self.hostname:
            host_params["host"] = self.address
            if host_params["scheme"] == "https":
                # server_hostname: the SNI sent; assert_hostname: the name the certificate
                # must carry. Both stay the real hostname although we dial an address.
                pool_kwargs["server_hostname"] = self.hostname
                pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        parsed = urlsplit(request.url or "")
        if (parsed.hostname or "").lower() == self.hostname and "Host" not in request.headers:
            # Without this http.client would send "Host: <address>" and the ingress would
            # not match the rule for the hostname.
            request.headers["Host"] = parsed.netloc.rsplit("@", 1)[-1]
        return super().send(request, *args, **kwargs)


def ingress_session(
    hostname: str, *, ca_bundle: Path, address: str = "127.0.0.1"
) -> requests.Session:
    """A Session that reaches https://<hostname>/ at `address`, trusting only `ca_bundle`."""
    if not ca_bundle.is_file():
        raise FileNotFoundError(f"CA certificate {ca_bundle} does not exist")
    session = requests.Session()
    # Proxy variables in the environment must not send local traffic elsewhere, and the
    # system trust store must not vouch for a certificate only our CA should.
    session.trust_env = False
    session.verify = str(ca_bundle)
    adapter = ResolveToAdapter(hostname, address)
    session.mount(f"https://{hostname}", adapter)
    session.mount(f"http://{hostname}", adapter)
    return session


def wait_until_served(
    session: requests.Session, url: str, *, timeout: float, diagnose: Callable[[], str]
) -> None:
    """GET `url` until it answers 200: ingress-nginx serves a new Ingress and its endpoints
    a few seconds after the release is installed."""
    wait_until(
        lambda: answered(lambda: session.get(url, timeout=5)),
        what=f"{url} through the ingress",
        timeout=timeout,
        interval=1,
        retry_on=(NotYet,),
        diagnose=diagnose,
    )
