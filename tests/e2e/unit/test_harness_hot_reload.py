"""The hot-reload edit works on today's service/http/health.py, and the skaffold setup around it."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness.hot_reload import (
    HANDLER_FILE,
    SKAFFOLD_DEV_VALUES,
    HandlerShapeError,
    add_marker_to_livez,
    marker_in,
    move_skaffold_ingress,
    skaffold_dev_argv,
    skaffold_run_argv,
)
from tests.e2e.harness.migration_images import copy_source
from tests.e2e.harness.release import ingress_plan, load_values
from tools.prereq import require_tool

ROOT = Path(__file__).resolve().parents[3]

# Builds the app from the copy's code and asks /livez, which never touches the database.
CALL_LIVEZ = """
import json
from service import create_app
client = create_app().test_client()
response = client.get("/livez")
print(json.dumps({"status": response.status_code, "body": response.get_json()}))
"""


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(ROOT, tmp_path_factory.mktemp("hot-reload") / "src")


def call_livez(context: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", CALL_LIVEZ],
        cwd=context,
        env={
            "PATH": "/usr/bin:/bin",
            # Required by the settings; never connected to (/livez does not use it).
            "DATABASE_URL": "postgresql://app:unused@127.0.0.1:9/app",
            "METRICS_ENABLED": "false",
            "APP_ENV": "dev",  # the hot-reload loop's settings (no issuer needed)
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_edited_handler_answers_with_the_marker_and_its_usual_fields(
    source_copy: Path,
) -> None:
    handler = source_copy / HANDLER_FILE
    original = handler.read_text()
    before = call_livez(source_copy)
    assert before["status"] == 200 and marker_in(before["body"]) is None

    handler.write_text(add_marker_to_livez(original, "abc123"))
    try:
        after = call_livez(source_copy)
    finally:
        handler.write_text(original)
    assert after["status"] == 200
    assert marker_in(after["body"]) == "abc123"
    assert isinstance(before["body"], dict) and isinstance(after["body"], dict)
    assert {k: v for k, v in after["body"].items() if k != "e2e_hot_reload"} == before["body"]


def test_an_unexpected_handler_shape_is_reported() -> None:
    with pytest.raises(HandlerShapeError, match="no top-level def livez"):
        add_marker_to_livez("def readyz():\n    return 1\n", "m")
    two_returns = "def livez():\n    if x:\n        return a\n    return b\n"
    with pytest.raises(HandlerShapeError, match="exactly one `return"):
        add_marker_to_livez(two_returns, "m")


def test_the_dev_profile_still_deploys_the_values_file_the_overlay_goes_into() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    [dev] = [p for p in config["profiles"] if p["name"] == "dev"]
    [release] = dev["deploy"]["helm"]["releases"]
    assert str(SKAFFOLD_DEV_VALUES) in release["valuesFiles"]
    assert "values/dev.yaml" in release["valuesFiles"]
    # The edited handler is one of the files the dev profile syncs instead of rebuilding.
    [artifact] = dev["build"]["artifacts"]
    sources = [rule["src"] for rule in artifact["sync"]["manual"]]
    # fnmatch's `*` crosses "/", as skaffold's `**` does.
    assert any(fnmatch.fnmatch(str(HANDLER_FILE), src) for src in sources), sources


def test_the_skaffold_copy_renders_the_ingress_on_the_suite_host(
    source_copy: Path, tmp_path: Path
) -> None:
    helm = require_tool("helm", provided_by="bash scripts/ci/install-k8s-tools.sh", env_var="HELM")
    context = copy_source(source_copy, tmp_path / "src")
    plan = ingress_plan(load_values(), "app-e2e-dev.localdev.me")
    move_skaffold_ingress(context, plan.overlay)
    with pytest.raises(HandlerShapeError, match="already sets `ingress`"):
        move_skaffold_ingress(context, plan.overlay)

    rendered = subprocess.run(
        [
            helm,
            "template",
            "app",
            str(context / "charts" / "app"),
            "--values",
            str(context / "values" / "dev.yaml"),
            "--values",
            str(context / SKAFFOLD_DEV_VALUES),
            "--set-string",
            "image.repository=service,image.tag=e2e-dev",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    [ingress] = [d for d in docs if d["kind"] == "Ingress"]
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["app-e2e-dev.localdev.me"]
    assert ingress["spec"]["tls"] == [
        {"hosts": ["app-e2e-dev.localdev.me"], "secretName": plan.tls_secret}
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    [app] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    assert app["args"] == ["dev"]  # still the dev server: only the hostname moved


PROFILES_BY_FLAVOUR = [("0", "--profile=dev"), ("1", "--profile=dev,from-source")]


@pytest.mark.parametrize(("from_source", "profiles"), PROFILES_BY_FLAVOUR)
def test_skaffold_dev_argv_targets_the_suite_namespace_and_context(
    monkeypatch: pytest.MonkeyPatch, from_source: str, profiles: str
) -> None:
    monkeypatch.setenv("CLUSTER_FROM_SOURCE", from_source)
    argv = skaffold_dev_argv(
        "/bin/skaffold", namespace="e2e-dev-1", kube_context="kind-app-e2e", tag="e2e-1-dev"
    )
    assert argv[:3] == ["/bin/skaffold", "dev", profiles]
    assert "--namespace=e2e-dev-1" in argv
    assert "--kube-context=kind-app-e2e" in argv
    assert "--port-forward=off" in argv
    assert "--tag=e2e-1-dev" in argv


@pytest.mark.parametrize(("from_source", "profiles"), PROFILES_BY_FLAVOUR)
def test_skaffold_run_argv_is_one_dev_profile_session_in_the_suite_namespace(
    monkeypatch: pytest.MonkeyPatch, from_source: str, profiles: str
) -> None:
    monkeypatch.setenv("CLUSTER_FROM_SOURCE", from_source)
    argv = skaffold_run_argv(
        "/bin/skaffold", namespace="e2e-sessions-1", kube_context="kind-app-e2e", tag="e2e-1-s"
    )
    assert argv[:3] == ["/bin/skaffold", "run", profiles]
    assert "--namespace=e2e-sessions-1" in argv
    assert "--kube-context=kind-app-e2e" in argv
    assert "--tag=e2e-1-s" in argv  # the same tag both sessions: unchanged code
    assert not any(arg.startswith("--cleanup") for arg in argv)  # `run` leaves the release
