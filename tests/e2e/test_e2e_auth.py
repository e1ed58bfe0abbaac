"""Access control on a live kind cluster: a release whose keys are mounted through
`auth.jwks` answers 401, 403 and 200 through the ingress over TLS.

Its own namespace and hostname (E2E_AUTH_INGRESS_HOST), so it runs next to, or without,
the release module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.harness import release as rel
from tests.e2e.harness.auth import E2EIssuer
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.helm import Helm
from tests.e2e.harness.ingress_client import ingress_session, wait_until_served
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import BuiltImage, E2ETools, ingress_host, restricted_namespace
from tools import localcluster

pytestmark = pytest.mark.e2e

DEFAULT_HOST = "app-e2e-auth.localdev.me"
ITEMS = "/api/v1/items"


@dataclass(frozen=True)
class ProtectedRelease:
    host: str
    session: requests.Session
    issuer: E2EIssuer

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"


@pytest.fixture(scope="module")
def protected(
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_run_id: str,
    base_image: BuiltImage,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[ProtectedRelease]:
    host = ingress_host("E2E_AUTH_INGRESS_HOST", DEFAULT_HOST)
    plan = rel.ingress_plan(rel.load_values(), host)
    workdir = tmp_path_factory.mktemp("auth")
    namespace = f"e2e-auth-{e2e_run_id}"
    issuer = E2EIssuer()
    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        ca_cert = localcluster.ensure_tls_secret(
            e2e_cluster.context, namespace, host=host, secret=plan.tls_secret,
            tls_dir=workdir / "tls", log=print,
        )  # fmt: skip
        kubectl.apply_json(issuer.secret_manifest(namespace))
        Helm(e2e_tools.helm, namespace, e2e_cluster.kubeconfig).upgrade_install(
            rel.RELEASE,
            rel.CHART,
            values_files=(rel.DEV_VALUES, rel.write_overlay(plan, workdir)),
            set_string={**rel.image_values(base_image.repository, base_image.tag),
                        **issuer.helm_values()},
        )  # fmt: skip
        session = ingress_session(host, ca_bundle=ca_cert)
        released = ProtectedRelease(host, session, issuer)
        wait_until_served(session, released.url("/openapi.json"), timeout=90,
                          diagnose=lambda: namespace_summary(kubectl))  # fmt: skip
        yield released


def test_no_token_is_401_with_a_bearer_challenge(protected: ProtectedRelease) -> None:
    response = protected.session.get(protected.url(ITEMS), timeout=10)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="items"'
    forged = E2EIssuer().bearer("items:read items:write")  # same kid, another key
    response = protected.session.get(protected.url(ITEMS), headers=forged, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_read_token_reads_and_cannot_write(protected: ProtectedRelease) -> None:
    read = protected.issuer.bearer("items:read")
    assert protected.session.get(protected.url(ITEMS), headers=read, timeout=10).status_code == 200
    response = protected.session.post(
        protected.url(ITEMS), json={"name": "refused"}, headers=read, timeout=10
    )
    assert response.status_code == 403, response.text
    assert 'error="insufficient_scope", ' in response.headers["WWW-Authenticate"]
    assert 'scope="items:write"' in response.headers["WWW-Authenticate"]


def test_a_write_token_creates(protected: ProtectedRelease) -> None:
    both = protected.issuer.bearer("items:read items:write")
    created = protected.session.post(
        protected.url(ITEMS), json={"name": "e2e-auth"}, headers=both, timeout=10
    )
    assert created.status_code == 201, created.text
    fetched = protected.session.get(
        protected.url(f"{ITEMS}/{created.json()['id']}"), headers=both, timeout=10
    )
    assert fetched.status_code == 200 and fetched.json()["name"] == "e2e-auth"
