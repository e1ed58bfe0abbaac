"""The source build of the local Kubernetes: pins, caches, the kind sandbox runtime.

The whole build runs in CI (`make from-source` in .ci/run) and the live suite runs on what
it builds; these tests pin down the rules each piece keeps, on every machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import kind_sandbox
from tools.from_source import build, cache, gobuild, images
from tools.from_source.pins import (
    GO_MODULES_DIR,
    GoComponent,
    PinError,
    check_go_module,
    load,
    required_version,
)
from tools.prereq import missing

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_RUNC = ROOT / "local" / "from-source" / "sandbox" / "sandbox-runc"
DOCKER_SHIM = ROOT / "local" / "from-source" / "sandbox" / "bin" / "docker"


# -- pins ---------------------------------------------------------------------------------


def test_every_go_module_requires_exactly_its_pinned_version() -> None:
    pins = load()
    assert set(pins.go) == {p.name for p in GO_MODULES_DIR.iterdir() if p.is_dir()}
    for component in pins.go.values():
        check_go_module(component)  # raises on any disagreement
        assert (component.module_dir / "go.sum").is_file(), component.name


def test_kind_and_skaffold_pins_match_make_tools_pins() -> None:
    import tomllib

    tools = tomllib.loads((ROOT / "local" / "tools.toml").read_text())
    pins = load()
    assert pins["kind"].bare_version == tools["kind"]["version"]
    assert pins["skaffold"].bare_version == tools["skaffold"]["version"]


def test_a_go_mod_that_drifts_from_the_pin_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tools.from_source.pins as pins_module

    (tmp_path / "x").mkdir()
    go_mod = tmp_path / "x" / "go.mod"
    go_mod.write_text("module local.build/x\n\ngo 1.24\n\nrequire (\n\texample.com/x v1.2.3\n)\n")
    assert required_version(go_mod, "example.com/x") == "v1.2.3"
    monkeypatch.setattr(pins_module, "GO_MODULES_DIR", tmp_path)
    component = GoComponent("x", "example.com/x", "v1.2.4", ("example.com/x",), {})
    with pytest.raises(PinError, match=r"requires example.com/x v1.2.3, but .* pins v1.2.4"):
        check_go_module(component)
    check_go_module(GoComponent("x", "example.com/x", "v1.2.3", ("example.com/x",), {}))


def test_a_bad_pin_file_names_the_table(tmp_path: Path) -> None:
    bad = tmp_path / "pins.toml"
    bad.write_text(
        '[etcd]\nmodule = "go.etcd.io/etcd/server/v3"\nversion = "3.6"\npackages = ["x"]\n'
    )
    with pytest.raises(PinError, match=r"\[etcd\] version must read vX.Y.Z"):
        load(bad)


# -- caches -------------------------------------------------------------------------------


def test_cache_lives_outside_the_checkout_unless_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FROM_SOURCE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "k8s-from-source"
    monkeypatch.setenv("FROM_SOURCE_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_dir() == tmp_path / "elsewhere"


def test_a_key_changes_with_any_input(tmp_path: Path) -> None:
    recipe = tmp_path / "Dockerfile"
    recipe.write_text("FROM base\n")
    first = cache.key(["etcd", "v3.6.5"], [("Dockerfile", recipe)])
    assert first == cache.key(["etcd", "v3.6.5"], [("Dockerfile", recipe)])
    assert first != cache.key(["etcd", "v3.6.6"], [("Dockerfile", recipe)])
    recipe.write_text("FROM base\nRUN true\n")
    assert first != cache.key(["etcd", "v3.6.5"], [("Dockerfile", recipe)])


def test_image_tags_carry_version_and_recipe() -> None:
    pause = images.ImageRecipe(name="pause", version="3.10", build_args={"PAUSE_VERSION": "3.10"})
    other = images.ImageRecipe(name="pause", version="3.10", build_args={"PAUSE_VERSION": "3.9"})
    assert images.recipe_key(pause, "sha256:a") == images.recipe_key(pause, "sha256:a")
    assert images.recipe_key(pause, "sha256:a") != images.recipe_key(other, "sha256:a")
    assert images.recipe_key(pause, "sha256:a") != images.recipe_key(pause, "sha256:b")


def test_go_build_is_cached_by_version_and_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        monkeypatch.setenv("GO", gobuild.go_binary())
    except gobuild.GoBuildError as exc:
        missing(str(exc))
    monkeypatch.setenv("FROM_SOURCE_CACHE", str(tmp_path / "cache"))
    module = tmp_path / "modules" / "hello"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/hello\n\ngo 1.22\n")
    (module / "main.go").write_text('package main\n\nfunc main() { println("v1") }\n')
    import tools.from_source.pins as pins_module

    monkeypatch.setattr(pins_module, "GO_MODULES_DIR", tmp_path / "modules")
    component = GoComponent("hello", "example.com/hello", "v1.0.0", ("example.com/hello",),
                            {"ldflags": "-X main.unused={version}"})  # fmt: skip
    monkeypatch.setattr(gobuild, "check_go_module", lambda c: None)  # not a dependency here
    first = gobuild.build(component, log=lambda _m: None)
    assert first.seconds > 0 and first.binary("hello").is_file()
    assert subprocess.run([first.binary("hello")], capture_output=True, text=True).stderr == "v1\n"
    again = gobuild.build(component, log=lambda _m: None)
    assert again.seconds == 0 and again.directory == first.directory
    (module / "main.go").write_text('package main\n\nfunc main() { println("v2") }\n')
    changed = gobuild.build(component, log=lambda _m: None)
    assert changed.directory != first.directory and changed.seconds > 0
    record = json.loads((changed.directory / "build.json").read_text())
    assert record["version"] == "v1.0.0" and "-s -w" in record["ldflags"]


# -- what the node image carries ------------------------------------------------------------


def test_kinds_storage_manifest_gets_the_image_built_here(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "build" / "nodeimage"
    source.mkdir(parents=True)
    (source / "const_storage.go").write_text(
        "package nodeimage\n\nconst defaultStorageManifest = `\nkind: Deployment\n"
        "        image: ` + storageProvisionerImage + `\n            - ` + storageHelperImage"
        " + `\n`\n"
    )
    manifest = build.storage_manifest(tmp_path, "docker.io/local/lpp:v1")
    assert manifest.count("docker.io/local/lpp:v1") == 2 and "`" not in manifest


def test_the_cni_manifest_is_kinds_template_with_our_policy_controller() -> None:
    manifest = build.cni_manifest("docker.io/local/kube-router:v2.1.0")
    assert "would you kindly template this file" in manifest  # kind fills in the pod subnet
    assert '"subnet": "{{ .PodSubnet }}"' in manifest
    assert "@KUBE_ROUTER_IMAGE@" not in manifest
    assert "image: docker.io/local/kube-router:v2.1.0" in manifest
    assert "--run-firewall=true" in manifest and "--run-service-proxy=false" in manifest


def test_traefik_serves_ingress_nginxs_class() -> None:
    import yaml

    documents = list(yaml.safe_load_all(build.traefik_manifest()))
    ingress_class = next(d for d in documents if d["kind"] == "IngressClass")
    assert ingress_class["metadata"]["name"] == "nginx"
    assert ingress_class["spec"]["controller"] == "k8s.io/ingress-nginx"
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--providers.kubernetesIngressNGINX=true" in container["args"]
    assert container["image"] == build.traefik_ref(load())
    assert {p["hostPort"] for p in container["ports"]} == {80, 443}


# -- the kind sandbox runtime ---------------------------------------------------------------


def status_file(tmp_path: Path, bounding: int) -> Path:
    status = tmp_path / "status"
    status.write_text(f"Name:\tinit\nCapBnd:\t{bounding:016x}\n")
    return status


def test_withheld_capabilities_are_read_from_pid_1(tmp_path: Path) -> None:
    last = tmp_path / "cap_last_cap"
    last.write_text("40\n")
    everything = (1 << 41) - 1
    assert kind_sandbox.withheld_capabilities(status_file(tmp_path, everything), last) == []
    without_24 = everything & ~(1 << 24)
    assert kind_sandbox.withheld_capabilities(status_file(tmp_path, without_24), last) == [24]


def fake_docker(tmp_path: Path, runtimes: dict[str, object]) -> str:
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\necho '{json.dumps(runtimes)}'\n")
    docker.chmod(0o755)
    return str(docker)


def test_kind_runs_as_is_where_nothing_is_withheld(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin"}
    assert kind_sandbox.kind_environment("docker", env, withheld=[]) == env


def test_without_the_runtime_the_error_names_the_cause_and_the_script(tmp_path: Path) -> None:
    docker = fake_docker(tmp_path, {"runc": {"path": "runc"}})
    with pytest.raises(kind_sandbox.KindSandboxError) as raised:
        kind_sandbox.kind_environment(docker, {"PATH": "/usr/bin"}, withheld=[24])
    assert "unable to apply caps" in str(raised.value)
    assert "scripts/ci/docker-kind-runtime.sh" in str(raised.value)


def test_with_the_runtime_kinds_docker_is_the_shim(tmp_path: Path) -> None:
    docker = fake_docker(tmp_path, {"runc": {}, "kind-sandbox": {"path": "/x"}})
    env = kind_sandbox.kind_environment(docker, {"PATH": "/usr/bin"}, withheld=[24])
    assert env["PATH"].split(os.pathsep)[0] == str(DOCKER_SHIM.parent)
    assert env["KIND_SANDBOX_REAL_DOCKER"] == docker


def test_the_shim_adds_the_runtime_to_docker_run_only(tmp_path: Path) -> None:
    real = tmp_path / "real-docker"
    real.write_text('#!/bin/sh\necho "$@"\n')
    real.chmod(0o755)
    env = {**os.environ, "KIND_SANDBOX_REAL_DOCKER": str(real)}

    def shim(*args: str) -> str:
        return subprocess.run([DOCKER_SHIM, *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    assert shim("run", "--privileged", "node") == "run --runtime=kind-sandbox --privileged node"
    assert shim("exec", "--privileged", "node", "ctr") == "exec --privileged node ctr"


def test_sandbox_runc_drops_only_what_the_bounding_set_lacks(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    every = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN"]
    spec = {"process": {"capabilities": {k: list(every) for k in ("bounding", "effective")}}}
    (bundle / "config.json").write_text(json.dumps(spec))
    real = tmp_path / "runc"
    real.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n')
    real.chmod(0o755)
    subprocess.run(
        [sys.executable, SANDBOX_RUNC, "--root", "/x", "create", "--bundle", bundle, "id1"],
        env={**os.environ, "SANDBOX_RUNC_REAL": str(real)},
        check=True,
    )
    assert (tmp_path / "args").read_text().split() == ["--root", "/x", "create", "--bundle",
                                                       str(bundle), "id1"]  # fmt: skip
    with open("/proc/self/status") as status:
        mask = next(int(x.split()[1], 16) for x in status if x.startswith("CapBnd:"))
    held = {"CAP_CHOWN": 0, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24}
    expected = [c for c in every if mask >> held[c] & 1]
    kept = json.loads((bundle / "config.json").read_text())["process"]["capabilities"]
    assert kept == {"bounding": expected, "effective": expected}


# -- source patches ------------------------------------------------------------------------


def write_patches(path: Path, find: str, replace: str) -> Path:
    path.write_text(
        "[[patch]]\n"
        'file = "pkg/lb.go"\n'
        'why = "the balancer forgets the mark"\n'
        f"find = {json.dumps(find)}\n"
        f"replace = {json.dumps(replace)}\n"
    )
    return path


def test_a_patch_replaces_its_text_once_in_the_module_it_names(tmp_path: Path) -> None:
    module = tmp_path / "module"
    (module / "pkg").mkdir(parents=True)
    (module / "pkg" / "lb.go").write_text("server{URL: u}\nother{URL: u2}\n")
    patches = write_patches(tmp_path / "patches.toml", "server{URL: u}", "server{URL: u, F: f}")
    assert gobuild.apply_patches(patches, module) == {
        "pkg/lb.go": "server{URL: u, F: f}\nother{URL: u2}\n"
    }
    assert (module / "pkg" / "lb.go").read_text().startswith("server{URL: u}\n")  # untouched


@pytest.mark.parametrize("find", ["absent", "URL"])
def test_a_patch_whose_text_is_not_there_exactly_once_stops_the_build(
    tmp_path: Path, find: str
) -> None:
    module = tmp_path / "module"
    (module / "pkg").mkdir(parents=True)
    (module / "pkg" / "lb.go").write_text("server{URL: u}\nother{URL: u2}\n")
    patches = write_patches(tmp_path / "patches.toml", find, "x")
    with pytest.raises(gobuild.GoBuildError, match=r"patch 1: its `find` text occurs [02] times"):
        gobuild.apply_patches(patches, module)


def test_every_committed_patch_says_why_and_changes_something() -> None:
    import tomllib

    files = sorted(GO_MODULES_DIR.glob(f"*/{gobuild.PATCHES}"))
    assert files, "the traefik patch (terminating endpoints) is expected"
    for path in files:
        for patch in tomllib.loads(path.read_text())["patch"]:
            assert patch["why"].strip() and patch["find"] != patch["replace"], path
