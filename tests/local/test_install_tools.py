"""`make tools`: the right asset and checksum per platform, proven against a local file server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tools.install_tools import (
    DEFAULT_VERSIONS,
    PLATFORMS,
    ToolError,
    ToolSpec,
    asset_url,
    ensure_tools,
    host_platform,
    load_specs,
    parse_version,
)
from tools.prereq import require_tool

ROOT = Path(__file__).resolve().parents[2]


# --- the platform and the asset ---------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", "linux-amd64"),
        ("Linux", "aarch64", "linux-arm64"),
        ("Darwin", "arm64", "darwin-arm64"),
        ("Darwin", "x86_64", "darwin-amd64"),
    ],
)
def test_host_platform_names_assets_the_way_releases_do(
    system: str, machine: str, expected: str
) -> None:
    assert host_platform(system, machine) == expected


@pytest.mark.parametrize(("system", "machine"), [("Windows", "AMD64"), ("Linux", "riscv64")])
def test_unsupported_platform_says_what_is_supported(system: str, machine: str) -> None:
    with pytest.raises(ToolError, match="linux-amd64, linux-arm64, darwin-amd64, darwin-arm64"):
        host_platform(system, machine)


def test_official_urls_for_every_tool_and_platform() -> None:
    specs = load_specs()
    assert asset_url(specs["kind"], "darwin-arm64") == (
        "https://github.com/kubernetes-sigs/kind/releases/download/v0.32.0/kind-darwin-arm64"
    )
    assert asset_url(specs["skaffold"], "linux-arm64") == (
        "https://storage.googleapis.com/skaffold/releases/v2.23.0/skaffold-linux-arm64"
    )
    assert asset_url(specs["skaffold"], "linux-arm64", checksum=True).endswith(
        "/skaffold-linux-arm64.sha256"
    )
    assert asset_url(specs["helm"], "linux-amd64") == (
        "https://get.helm.sh/helm-v4.1.4-linux-amd64.tar.gz"
    )
    assert asset_url(specs["kubectl"], "darwin-amd64") == (
        "https://dl.k8s.io/release/v1.34.5/bin/darwin/amd64/kubectl"
    )
    assert asset_url(specs["kubectl"], "linux-amd64", "http://127.0.0.1:1/mirror") == (
        "http://127.0.0.1:1/mirror/kubectl/v1.34.5/bin/linux/amd64/kubectl"
    )


# --- the pinned versions file -----------------------------------------------------------


def test_pins_cover_the_four_tools_with_fitting_versions() -> None:
    specs = load_specs()
    assert sorted(specs) == ["helm", "kind", "kubectl", "skaffold"]
    for spec in specs.values():
        version = parse_version(spec.version)
        assert version is not None
        assert spec.fits(version), spec.name
        assert spec.base_url.startswith("https://"), spec.name
    # Skaffold drives Helm 4 only from 2.19 on; anything older must never be reused.
    assert specs["skaffold"].accept_min >= (2, 19, 0)
    assert specs["helm"].accept_below == (5, 0, 0)


def test_every_platform_has_a_pin_or_a_published_checksum_file() -> None:
    specs = load_specs()
    for spec in specs.values():
        assert "{os}" in spec.checksum
        assert "{arch}" in spec.checksum
    for name in ("kind", "helm", "kubectl"):
        assert sorted(specs[name].sha256) == sorted(PLATFORMS), name
    # Skaffold's Linux pins are filled by `--checksums skaffold` (see local/tools.toml);
    # until then those two fall back to the release's .sha256 files, and only those two.
    assert set(PLATFORMS) - set(specs["skaffold"].sha256) <= {"linux-amd64", "linux-arm64"}


def test_kubectl_pin_matches_the_official_binary_in_bin() -> None:
    """bin/kubectl (from the npm layer package) is the unmodified dl.k8s.io binary."""
    kubectl = require_tool(
        "kubectl",
        provided_by="bash scripts/ci/install-k8s-tools.sh or make tools",
        env_var="KUBECTL",
    )
    spec = load_specs()["kubectl"]
    reported = subprocess.run(
        [kubectl, "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    if parse_version(reported) != parse_version(spec.version) or host_platform() != "linux-amd64":
        pytest.skip(f"{kubectl} is not kubectl {spec.version} for linux-amd64")
    digest = hashlib.sha256(Path(kubectl).read_bytes()).hexdigest()
    assert digest == spec.sha256["linux-amd64"]


def test_malformed_pins_are_refused_with_the_field_named(tmp_path: Path) -> None:
    bad = DEFAULT_VERSIONS.read_text().replace(
        'linux-amd64 = "50030de2', 'linux-amd64 = "ZZ030de2', 1
    )
    path = tmp_path / "tools.toml"
    path.write_text(bad)
    with pytest.raises(ToolError, match=r"\[kind\.sha256\] linux-amd64"):
        load_specs(path)


# --- installs against a local release server --------------------------------------------


@dataclass
class ReleaseServer:
    root: Path
    url: str
    requests: list[str]


@pytest.fixture(autouse=True)
def no_installed_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the machine's own kind/helm/kubectl (CI has bin/helm 4.1.4 on PATH, which
    `make tools` would rightly reuse instead of downloading what the test serves)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}/bin")
    for name in ("KIND", "HELM", "KUBECTL", "SKAFFOLD"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[ReleaseServer]:
    root = tmp_path / "releases"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ReleaseServer(root, f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()


def fake_binary(name: str, version: str) -> bytes:
    return f"#!/bin/sh\necho '{name} v{version} fake'\n".encode()


def publish(server: ReleaseServer, spec: ToolSpec, plat: str, payload: bytes) -> str:
    """Serve payload where the mirror layout expects the asset; return its sha256."""
    rel = asset_url(spec, plat, server.url).removeprefix(server.url + "/")
    target = server.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def tarball(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def raw_spec(name: str = "kind", version: str = "0.32.0") -> ToolSpec:
    return replace(load_specs()[name], version=version, sha256={})


def quiet(_: str) -> None:
    pass


def ensure_published_kind(
    server: ReleaseServer,
    bin_dir: Path,
    binary: bytes = fake_binary("kind", "0.32.0"),
    *,
    exact: bool = False,
) -> dict[str, str]:
    """Publish `binary` as this host's kind 0.32.0 on the test server, pin its digest, and
    ensure kind in `bin_dir` from there."""
    plat = host_platform()
    spec = raw_spec()
    pin = publish(server, spec, plat, binary)
    return ensure_tools(
        ["kind"],
        specs={"kind": replace(spec, sha256={plat: pin})},
        bin_dir=bin_dir,
        base_url=server.url,
        log=quiet,
        exact=exact,
    )


def install_one(server: ReleaseServer, spec: ToolSpec, bin_dir: Path, plat: str) -> dict[str, str]:
    return ensure_tools(
        [spec.name],
        specs={spec.name: spec},
        bin_dir=bin_dir,
        plat=plat,
        base_url=server.url,
        log=quiet,
    )


def test_installs_the_asset_for_the_requested_platform(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = raw_spec()
    pins = {}
    for plat in PLATFORMS:  # every platform published, each with different bytes
        pins[plat] = publish(release_server, spec, plat, fake_binary(f"kind-{plat}", "0.32.0"))
    spec = replace(spec, sha256=pins)
    bin_dir = tmp_path / "bin"
    used = install_one(release_server, spec, bin_dir, "darwin-arm64")
    assert release_server.requests == ["/kind/v0.32.0/kind-darwin-arm64"]
    assert used == {"kind": str(bin_dir / "kind")}
    assert (bin_dir / "kind").read_bytes() == fake_binary("kind-darwin-arm64", "0.32.0")
    assert stat.S_IMODE((bin_dir / "kind").stat().st_mode) == 0o755


def test_checksum_mismatch_is_refused_and_nothing_is_installed(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = raw_spec()
    publish(release_server, spec, "linux-amd64", fake_binary("kind", "0.32.0"))
    spec = replace(spec, sha256={"linux-amd64": "0" * 64})
    bin_dir = tmp_path / "bin"
    with pytest.raises(ToolError, match="checksum mismatch") as excinfo:
        install_one(release_server, spec, bin_dir, "linux-amd64")
    assert "Nothing was installed" in str(excinfo.value)
    assert not bin_dir.exists()  # created only after the digest matched


def test_tampered_archive_is_refused_before_extraction(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = raw_spec("helm", "4.1.4")
    good = tarball("linux-amd64/helm", fake_binary("helm", "4.1.4"))
    pin = hashlib.sha256(good).hexdigest()
    publish(release_server, spec, "linux-amd64", tarball("linux-amd64/helm", b"#!/bin/sh\nevil\n"))
    with pytest.raises(ToolError, match="checksum mismatch"):
        install_one(
            release_server, replace(spec, sha256={"linux-amd64": pin}), tmp_path, "linux-amd64"
        )
    assert not (tmp_path / "helm").exists()


def test_archive_member_for_the_platform_is_extracted(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = raw_spec("helm", "4.1.4")
    binary = fake_binary("helm", "4.1.4")
    pin = publish(release_server, spec, "darwin-amd64", tarball("darwin-amd64/helm", binary))
    install_one(
        release_server, replace(spec, sha256={"darwin-amd64": pin}), tmp_path, "darwin-amd64"
    )
    assert release_server.requests == ["/helm/helm-v4.1.4-darwin-amd64.tar.gz"]
    assert (tmp_path / "helm").read_bytes() == binary


def test_unpinned_platform_is_checked_against_the_published_checksum_file(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = raw_spec("skaffold", "2.23.0")
    digest = publish(release_server, spec, "linux-arm64", fake_binary("skaffold", "2.23.0"))
    sidecar = asset_url(spec, "linux-arm64", release_server.url, checksum=True)
    (release_server.root / sidecar.removeprefix(release_server.url + "/")).write_text(
        f"{digest}  skaffold-linux-arm64\n"
    )
    messages: list[str] = []
    ensure_tools(
        ["skaffold"],
        specs={"skaffold": spec},
        bin_dir=tmp_path,
        plat="linux-arm64",
        base_url=release_server.url,
        log=messages.append,
    )
    assert release_server.requests == [
        "/skaffold/v2.23.0/skaffold-linux-arm64.sha256",
        "/skaffold/v2.23.0/skaffold-linux-arm64",
    ]
    assert any("no pinned digest" in m for m in messages)
    # ... and a wrong published digest is refused just like a wrong pin.
    (release_server.root / sidecar.removeprefix(release_server.url + "/")).write_text("f" * 64)
    (tmp_path / "skaffold").unlink()
    with pytest.raises(ToolError, match="checksum mismatch"):
        install_one(release_server, spec, tmp_path, "linux-arm64")


def test_missing_asset_names_the_url_and_the_fix(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    spec = replace(raw_spec(), sha256={"linux-amd64": "a" * 64})
    with pytest.raises(ToolError, match=r"HTTP 404.*local/tools\.toml"):
        install_one(release_server, spec, tmp_path, "linux-amd64")


def write_tool(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(fake_binary(name, version))
    path.chmod(0o755)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_fitting_tool_on_path_is_reused_without_downloading(
    release_server: ReleaseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = write_tool(tmp_path / "path", "kind", "0.32.1")
    monkeypatch.setenv("PATH", f"{existing.parent}{os.pathsep}{os.environ['PATH']}")
    spec = raw_spec()
    used = ensure_tools(
        ["kind"],
        specs={"kind": spec},
        bin_dir=tmp_path / "bin",
        base_url=release_server.url,
        log=quiet,
    )
    assert used == {"kind": str(existing)}
    assert release_server.requests == []


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_too_old_tool_on_path_is_replaced_by_the_pinned_one(
    release_server: ReleaseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = write_tool(tmp_path / "path", "kind", "0.20.0")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{os.environ['PATH']}")
    bin_dir = tmp_path / "bin"
    used = ensure_published_kind(release_server, bin_dir)
    assert used == {"kind": str(bin_dir / "kind")}
    assert release_server.requests == [f"/kind/v0.32.0/kind-{host_platform()}"]
    assert old.read_bytes() == fake_binary("kind", "0.20.0")  # never touched outside bin/


def test_installed_binary_must_report_the_pinned_version(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match=r"does not report version 0\.32\.0"):
        ensure_published_kind(release_server, tmp_path, fake_binary("kind", "0.1.0"))


def test_cli_reports_every_failure_and_exits_1(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    versions = tmp_path / "tools.toml"
    versions.write_text(
        DEFAULT_VERSIONS.read_text().replace('version = "0.32.0"', 'version = "0.32.9"')
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.install_tools",
            "kind",
            "skaffold",
            "--versions",
            str(versions),
            "--bin-dir",
            str(tmp_path / "bin"),
            "--platform",
            "darwin-arm64",
            "--base-url",
            release_server.url,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert "kind: " in result.stderr
    assert "skaffold: " in result.stderr
    assert "HTTP 404" in result.stderr
    assert not (tmp_path / "bin" / "kind").exists()


def test_a_mirror_cannot_vouch_for_an_unpinned_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From TOOLS_BASE_URL, a platform with no pin is refused before anything is fetched."""
    from tools.install_tools import main

    result = main(["skaffold", "--platform", "linux-arm64", "--bin-dir", str(tmp_path),
                   "--base-url", "http://127.0.0.1:9"])  # fmt: skip
    assert result == 1
    assert "pins no SHA-256 for skaffold on linux-arm64" in capsys.readouterr().err
    assert not (tmp_path / "skaffold").exists()


# --- CI: exactly the pinned versions, from bin/ -------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_exact_mode_ignores_a_fitting_copy_on_path_and_installs_the_pin(
    release_server: ReleaseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hosted runner's own helm fits the accept range; CI must still test the pinned one."""
    runner_copy = write_tool(tmp_path / "runner", "kind", "0.32.1")
    monkeypatch.setenv("PATH", f"{runner_copy.parent}{os.pathsep}{os.environ['PATH']}")
    bin_dir = tmp_path / "bin"
    used = ensure_published_kind(release_server, bin_dir, exact=True)
    assert used == {"kind": str(bin_dir / "kind")}
    assert release_server.requests == [f"/kind/v0.32.0/kind-{host_platform()}"]


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
@pytest.mark.parametrize(("in_bin", "reused"), [("0.32.0", True), ("0.32.1", False)])
def test_exact_mode_reuses_bin_only_at_the_pinned_version(
    release_server: ReleaseServer, tmp_path: Path, in_bin: str, reused: bool
) -> None:
    bin_dir = tmp_path / "bin"
    write_tool(bin_dir, "kind", in_bin)
    ensure_published_kind(release_server, bin_dir, exact=True)
    assert (release_server.requests == []) is reused
    assert (bin_dir / "kind").read_bytes() == fake_binary("kind", "0.32.0")


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
@pytest.mark.parametrize(("ci", "from_bin"), [("true", True), ("", False)])
def test_cli_with_ci_true_installs_the_pin_instead_of_the_runner_copy(
    release_server: ReleaseServer, tmp_path: Path, ci: str, from_bin: bool
) -> None:
    """`make tools` in CI (CI=true) vs on a laptop, with the same fitting kind on PATH."""
    runner_copy = write_tool(tmp_path / "runner", "kind", "0.32.1")
    plat = host_platform()
    digest = publish(release_server, raw_spec(), plat, fake_binary("kind", "0.32.0"))
    versions = tmp_path / "tools.toml"
    versions.write_text(
        DEFAULT_VERSIONS.read_text().replace(
            f'{plat} = "{load_specs()["kind"].sha256[plat]}"', f'{plat} = "{digest}"'
        )
    )
    bin_dir = tmp_path / "bin"
    path = f"{runner_copy.parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "tools.install_tools", "kind", "--versions", str(versions),
         "--bin-dir", str(bin_dir), "--base-url", release_server.url],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "CI": ci, "PATH": path},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (bin_dir / "kind").exists() is from_bin
    assert (f"reusing {runner_copy}" in result.stdout) is not from_bin
