"""Cluster bring-up logic with a stand-in kubectl: the webhook wait, TLS secret, refusals."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from tools import localcluster
from tools.localcluster import (
    LocalClusterError,
    ensure_tls_secret,
    ports_in_use,
    ports_taken_message,
    require_kind_context,
    verify_ingress_manifest,
    wait_for_ingress_webhook,
)

# Fails the webhook probe until $FAKE_FAILURES attempts have been made, like a webhook
# whose certificate or endpoints are not ready yet; records every call and its stdin.
FAKE_KUBECTL = """#!/bin/sh
echo "$*" >> "$FAKE_DIR/calls"
case "$*" in
  *"--dry-run=server"*)
    cat > "$FAKE_DIR/probe.yaml"
    n=$(($(cat "$FAKE_DIR/count" 2>/dev/null || echo 0) + 1)); echo $n > "$FAKE_DIR/count"
    if [ "$n" -le "$FAKE_FAILURES" ]; then
      echo 'Error from server (InternalError): failed calling webhook: connection refused' >&2
      exit 1
    fi
    echo ingress.networking.k8s.io/ingress-webhook-probe ;;
  *"create secret tls"*) echo "kind: Secret # from $*" ;;
  *"apply -f -"*) cat > "$FAKE_DIR/applied.yaml"; echo "secret/app-local-tls unchanged" ;;
esac
"""


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "kubectl"
    script.write_text(FAKE_KUBECTL)
    script.chmod(0o755)
    monkeypatch.setenv("KUBECTL", str(script))
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_FAILURES", "0")
    return tmp_path


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_webhook_wait_retries_until_the_webhook_answers(
    fake_kubectl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAILURES", "3")
    clock = FakeClock()
    attempts = wait_for_ingress_webhook(
        "kind-app-local",
        timeout_s=60,
        interval_s=2,
        log=lambda _: None,
        clock=clock,
        sleep=clock.sleep,
    )
    assert attempts == 4
    assert clock.now == 6  # three failed attempts, each followed by one interval
    calls = (fake_kubectl / "calls").read_text().splitlines()
    assert (
        calls[0]
        == "--context kind-app-local get validatingwebhookconfiguration ingress-nginx-admission"
    )
    assert all("--context kind-app-local" in c for c in calls)
    probe = yaml.safe_load((fake_kubectl / "probe.yaml").read_text())
    assert probe["kind"] == "Ingress"
    assert probe["spec"]["ingressClassName"] == "nginx"


def test_webhook_wait_gives_up_with_the_last_error_and_where_to_look(
    fake_kubectl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAILURES", "1000")
    clock = FakeClock()
    with pytest.raises(LocalClusterError) as excinfo:
        wait_for_ingress_webhook(
            "kind-app-local",
            timeout_s=10,
            interval_s=2,
            log=lambda _: None,
            clock=clock,
            sleep=clock.sleep,
        )
    message = str(excinfo.value)
    assert "did not answer within 10s" in message
    assert "failed calling webhook" in message
    assert "kubectl -n ingress-nginx logs deployment/ingress-nginx-controller" in message
    assert int((fake_kubectl / "count").read_text()) == 6  # t=0,2,4,6,8,10


def test_tls_secret_is_applied_from_the_generated_certificate(fake_kubectl: Path) -> None:
    messages: list[str] = []
    ca = ensure_tls_secret(
        "kind-app-local", "app", tls_dir=fake_kubectl / "tls", log=messages.append
    )
    assert ca == fake_kubectl / "tls" / "ca.crt"
    calls = (fake_kubectl / "calls").read_text().splitlines()
    create = next(c for c in calls if "create secret tls" in c)
    assert "-n app create secret tls app-local-tls" in create
    assert f"--cert={fake_kubectl / 'tls' / 'tls.crt'}" in create
    assert "--dry-run=client" in create  # rendered, then applied: idempotent
    assert (fake_kubectl / "applied.yaml").read_text().startswith("kind: Secret")
    assert any("unchanged" in m for m in messages)
    assert any("To trust the local CA" in m for m in messages)  # first run only
    messages.clear()
    ensure_tls_secret("kind-app-local", "app", tls_dir=fake_kubectl / "tls", log=messages.append)
    assert not any("To trust the local CA" in m for m in messages)


@pytest.mark.parametrize("context", ["kind-app-local", "kind-other"])
def test_kind_contexts_are_accepted(context: str) -> None:
    assert require_kind_context(context) == context.removeprefix("kind-")


@pytest.mark.parametrize(
    "context",
    ["prod", "minikube", "docker-desktop", "arn:aws:eks:eu-west-1:1:cluster/kind-x", "kind-"],
)
def test_other_contexts_are_refused_with_the_fix(context: str) -> None:
    with pytest.raises(LocalClusterError, match=r"make cluster") as excinfo:
        require_kind_context(context)
    assert repr(context) in str(excinfo.value)


def test_a_listening_port_is_reported_busy_with_how_to_find_the_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert ports_in_use([port]) == [port]
    assert ports_in_use([port]) == []
    message = ports_taken_message([port])
    assert f"127.0.0.1:{port} already in use" in message
    assert f"lsof -nP -iTCP:{port}" in message


def test_only_the_pinned_ingress_release_is_accepted() -> None:
    version = localcluster.INGRESS_NGINX_VERSION
    good = (
        "kind: ValidatingWebhookConfiguration\n"
        f"image: registry.k8s.io/ingress-nginx/controller:{version}@sha256:{'0' * 64}\n"
    )
    verify_ingress_manifest(good)
    with pytest.raises(LocalClusterError, match="not release"):
        verify_ingress_manifest(good.replace(version, "v1.14.0"))
    with pytest.raises(LocalClusterError, match="not release"):
        verify_ingress_manifest("<html>captive portal</html>")


def test_manifest_pin_is_the_kind_provider_of_the_tagged_release() -> None:
    assert localcluster.INGRESS_NGINX_MANIFEST_URL == (
        "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/"
        "deploy/static/provider/kind/deploy.yaml"
    )


def test_missing_tool_names_make_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localcluster, "find_tool", lambda name, env_var=None: None)
    with pytest.raises(LocalClusterError, match=r"`kind` not found: run `make tools`"):
        localcluster.tool("kind")
