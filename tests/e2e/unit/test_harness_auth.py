"""The e2e access-control harness, checked here: its Secret, values and tokens are what the
chart mounts and the service accepts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from service.auth.keys import KeySet
from service.auth.verify import TokenVerifier
from service.config import Settings
from tests.chart.chartlib import helm_binary, run_helm, template_args
from tests.e2e.harness import auth
from tests.e2e.harness.release import DEV_VALUES


def test_tokens_verify_against_the_secrets_keys(tmp_path: Path) -> None:
    issuer = auth.E2EIssuer()
    secret = issuer.secret_manifest("ns")
    assert secret["metadata"] == {"name": auth.SECRET, "namespace": "ns"}
    path = tmp_path / auth.SECRET_KEY
    path.write_bytes(base64.b64decode(secret["data"][auth.SECRET_KEY]))
    assert "d" not in json.loads(path.read_text())["keys"][0]  # public half only
    keys = KeySet(auth.ISSUER, jwks_file=str(path))
    verifier = TokenVerifier(keys, issuer=auth.ISSUER, audience=auth.AUDIENCE)
    caller = verifier.verify(issuer.token("items:read"))
    assert caller.scopes == {"items:read"} and caller.subject == "e2e"
    other = auth.E2EIssuer()
    with pytest.raises(Exception, match="signature is invalid"):  # same kid, another key
        verifier.verify(other.token("items:read"))


@pytest.mark.helm
def test_the_values_render_a_release_that_starts_with_the_mounted_keys(tmp_path: Path) -> None:
    helm4 = helm_binary(4)  # skips without helm, fails with CI=true
    sets = [f"{k}={v}" for k, v in auth.E2EIssuer().helm_values().items()]
    sets.append("image.tag=e2e")  # the suite passes the tag of the image it built
    result = run_helm(helm4, *template_args(None, sets, [DEV_VALUES]))
    assert result.returncode == 0, result.stderr
    [config] = [o for o in yaml.safe_load_all(result.stdout) if o and o["kind"] == "ConfigMap"
                and o["metadata"]["name"] == "app"]  # fmt: skip
    data = {k: str(v) for k, v in config["data"].items()}
    assert data["AUTH_JWKS_FILE"] == f"/run/secrets/auth/{auth.SECRET_KEY}"
    # The pod's settings, with the mounted file standing in at a local path.
    jwks_file = tmp_path / auth.SECRET_KEY
    jwks_file.write_text("{}")
    env = {**data, "DATABASE_URL": "postgresql://a:b@db/app", "AUTH_JWKS_FILE": str(jwks_file)}
    settings = Settings.from_env(env)
    assert settings.auth.enabled and settings.auth.issuer == auth.ISSUER
    assert settings.auth.audience == auth.AUDIENCE
