"""PortForward against a fake kubectl that really listens and relays to a local server."""

from __future__ import annotations

import time

import pytest
import requests

from tests.e2e.harness.port_forward import PortForward, PortForwardError, parse_forwarding_line
from tests.e2e.unit.standins import FakeKubectl, RunningServer


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Forwarding from 127.0.0.1:43117 -> 8000\n", ("127.0.0.1", 43117, 8000)),
        ("Forwarding from [::1]:43117 -> 8000", ("::1", 43117, 8000)),
        ("Handling connection for 8000", None),
        ("", None),
    ],
)
def test_parse_forwarding_line(line: str, expected: tuple[str, int, int] | None) -> None:
    assert parse_forwarding_line(line) == expected


def test_forwards_as_soon_as_kubectl_says_so(
    fake_kubectl: FakeKubectl, http_server: RunningServer
) -> None:
    fake_kubectl.set(upstream=f"127.0.0.1:{http_server.port}")
    started = time.monotonic()
    with PortForward(fake_kubectl.kubectl, "svc/app", 80) as forward:
        ready_after = time.monotonic() - started
        response = requests.get(forward.url("/readyz"), timeout=10)
        assert response.json()["path"] == "/readyz"
        assert forward.local_port != http_server.port  # traffic really went through kubectl
    # kubectl picked the local port (":80"), bound to loopback only.
    [argv] = fake_kubectl.invocations()
    assert argv[-4:] == ["--address", "127.0.0.1", "svc/app", ":80"]
    print(f"port-forward ready after {ready_after:.2f}s")


def test_kubectl_output_is_drained_so_later_requests_do_not_hang(
    fake_kubectl: FakeKubectl, http_server: RunningServer
) -> None:
    # The fake writes ~120 KB per connection: with an undrained pipe it would block
    # before relaying, and these requests would time out.
    fake_kubectl.set(upstream=f"127.0.0.1:{http_server.port}", port_forward="chatty")
    with PortForward(fake_kubectl.kubectl, "svc/app", 80) as forward:
        for _ in range(3):
            assert requests.get(forward.url("/livez"), timeout=10).status_code == 200
    assert http_server.script.requests == 3


def test_kubectl_failing_at_start_raises_with_its_message(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.set(port_forward="fail")
    forward = PortForward(fake_kubectl.kubectl, "svc/app", 80)
    with pytest.raises(PortForwardError) as caught, forward:
        pass
    assert "exited 1 before forwarding" in str(caught.value)
    assert 'services "app" not found' in str(caught.value)


def test_silent_kubectl_times_out_and_is_stopped(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.set(port_forward="hang")
    forward = PortForward(fake_kubectl.kubectl, "svc/app", 80, startup_timeout=1)
    with pytest.raises(PortForwardError, match="no 'Forwarding from' line within 1s"):
        forward.__enter__()
    assert forward._proc is None  # the hanging kubectl was terminated, not leaked


def test_a_dead_forward_is_reported_with_kubectl_output(
    fake_kubectl: FakeKubectl, http_server: RunningServer
) -> None:
    fake_kubectl.set(upstream=f"127.0.0.1:{http_server.port}", port_forward="die-after-first")
    with PortForward(fake_kubectl.kubectl, "svc/app", 80) as forward:
        assert requests.get(forward.url("/"), timeout=10).status_code == 200
        # kubectl exits right after the first connection; the next check must say so.
        deadline = time.monotonic() + 10
        while forward._proc is not None and forward._proc.poll() is None:
            assert time.monotonic() < deadline, "the fake kubectl never exited"
            time.sleep(0.05)
        with pytest.raises(PortForwardError, match="lost connection to pod"):
            forward.assert_alive()


def test_ensure_alive_starts_kubectl_again_after_it_died(
    fake_kubectl: FakeKubectl, http_server: RunningServer
) -> None:
    fake_kubectl.set(upstream=f"127.0.0.1:{http_server.port}", port_forward="die-after-first")
    with PortForward(fake_kubectl.kubectl, "svc/app", 80) as forward:
        assert requests.get(forward.url("/"), timeout=10).status_code == 200
        assert forward._proc is not None
        forward._proc.wait(timeout=10)
        assert forward.ensure_alive() is True
        assert forward.ensure_alive() is False  # the new kubectl is running: left alone
        assert requests.get(forward.url("/"), timeout=10).status_code == 200
    assert len(fake_kubectl.invocations()) >= 2
