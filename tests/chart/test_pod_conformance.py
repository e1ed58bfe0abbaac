"""Pod-spec conformance: the rendered prod migration Job and Deployment, run under a real
Docker engine as a kubelet would (tests/chart/kubelet.py), against a real PostgreSQL.

Catches what a cluster would: wrong ports or probe paths, unwritable directories, a
missing env var or secret file, a user that cannot read its own secret.
The image is the one `make image` builds; prod pins it by digest, which only a registry
can resolve, so this render names the same image by its local tag instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.chart.chartlib import ROOT, Obj, Render, helm_binary, render
from tests.chart.kubelet import Pod, probe_once, wait_for_probe
from tests.conftest import PostgresServer
from tests.scrape import scrape_until
from tools.localpg import free_port
from tools.prereq import find_tool, in_ci, missing

pytestmark = [pytest.mark.docker, pytest.mark.helm, pytest.mark.slow]


@pytest.fixture(scope="module")
def docker() -> str:
    path = find_tool("docker", "DOCKER")
    if path is None:
        missing("`docker` not found (install it with: apt-get install docker.io)")
        raise AssertionError("unreachable")
    info = subprocess.run([path, "info"], capture_output=True, timeout=30, check=False)
    if info.returncode != 0:
        missing("no Docker engine answers (start one with: bash scripts/ci/start-docker.sh)")
    return path


@pytest.fixture(scope="module")
def image(docker: str) -> str:
    """`make image`, as CI and developers build it (BuildKit cache makes a rebuild cheap)."""
    env = {**os.environ, "DOCKER": docker}
    if not os.environ.get("BASE_IMAGE") and in_ci():
        pytest.fail("CI=true but BASE_IMAGE is unset (.ci/run sets it from base-image.sh)")
    result = subprocess.run(
        ["make", "--no-print-directory", "image"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"make image failed:\n{result.stdout}\n{result.stderr}"
    built = re.findall(r"^built (\S+)$", result.stdout, re.MULTILINE)
    assert built, f"`make image` did not say what it built:\n{result.stdout}"
    return built[-1]


@pytest.fixture(scope="module")
def port() -> int:
    # Pods share the host network here, so the pod gets a free port instead of its own IP.
    return free_port()


def prod_render(image: str, port: int, *sets: str) -> Render:
    repository, tag = image.rsplit(":", 1)
    return render(
        helm_binary(4), "prod",
        [f"image.repository={repository}", f"image.tag={tag}", "image.digest=",
         "image.requireDigest=false", f"containerPort={port}", *sets],
    )  # fmt: skip


@pytest.fixture(scope="module")
def grant_role(postgres: PostgresServer) -> Iterator[str]:
    """values/prod.yaml's MIGRATION_GRANT_ROLE, under a name of this module's own."""
    role = f"app_rw_{secrets.token_hex(3)}"
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} NOLOGIN")  # type: ignore[call-overload]
    yield role
    with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE {role}")  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def database(postgres: PostgresServer, grant_role: str) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.database_url(name)
    postgres.drop_database(name)  # before the role: its grants live in this database


def make_pod(
    rendered: Render, spec: Obj, name: str, database_url: str, docker: str, tmp: Path
) -> Pod:
    return Pod(
        name=name,
        spec=spec,
        config_maps={c["metadata"]["name"]: c["data"] for c in rendered.of_kind("ConfigMap")},
        # values/prod.yaml's existingSecret and migration.existingSecret (one role here)
        secrets={
            "app-database": {"DATABASE_URL": database_url},
            "app-database-migrator": {"DATABASE_URL": database_url},
        },
        docker=docker,
        workdir=tmp,
    )


@dataclass
class Release:
    """What happened, step by step, when the release's pods ran."""

    early_init: subprocess.CompletedProcess[str]
    job: subprocess.CompletedProcess[str]
    init: subprocess.CompletedProcess[str] | None
    app_pod: Pod
    app_container: Obj
    app_name: str | None


@pytest.fixture(scope="module")
def release(
    docker: str,
    image: str,
    port: int,
    database: str,
    grant_role: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    tmp = tmp_path_factory.mktemp("pods")
    role = f"config.MIGRATION_GRANT_ROLE={grant_role}"
    rendered = prod_render(image, port, role)
    deployment_spec = rendered.deployment()["spec"]["template"]["spec"]
    job = rendered.migration_job()
    job_spec = job["spec"]["template"]["spec"]
    app_pod = make_pod(rendered, deployment_spec, "app-7d9f-x2x", database, docker, tmp)
    job_pod = make_pod(rendered, job_spec, job["metadata"]["name"], database, docker, tmp)
    # A new pod scheduled before the migration ran: its init container must give up clearly.
    impatient = prod_render(image, port, role, "migration.waitForSchema.timeoutSeconds=2")
    impatient_spec = impatient.deployment()["spec"]["template"]["spec"]
    early_pod = make_pod(impatient, impatient_spec, "app-early", database, docker, tmp)
    try:
        early_init = early_pod.run_to_completion(impatient_spec["initContainers"][0], timeout=60)
        job_run = job_pod.run_to_completion(
            job_spec["containers"][0], timeout=job["spec"]["activeDeadlineSeconds"]
        )
        init = app_name = None
        if job_run.returncode == 0:
            init = app_pod.run_to_completion(deployment_spec["initContainers"][0], timeout=120)
            if init.returncode == 0:
                app_name = app_pod.start(deployment_spec["containers"][0])
        yield Release(
            early_init, job_run, init, app_pod, deployment_spec["containers"][0], app_name
        )
    finally:
        for pod in (early_pod, job_pod, app_pod):
            pod.remove_all()


def test_init_container_refuses_an_unmigrated_database_with_a_clear_message(
    release: Release,
) -> None:
    result = release.early_init
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "migrat" in output.lower(), f"the message should point at the migration:\n{output}"


def test_migration_job_runs_to_completion(release: Release) -> None:
    assert release.job.returncode == 0, release.job.stdout + release.job.stderr


def test_init_container_passes_once_migrated(release: Release) -> None:
    assert release.init is not None, "skipped: the migration Job failed"
    assert release.init.returncode == 0, release.init.stdout + release.init.stderr


def test_app_container_passes_its_probes_as_declared(release: Release) -> None:
    assert release.app_name, "the app container was not started (see the tests above)"
    container, pod, name = release.app_container, release.app_pod, release.app_name
    wait_for_probe(pod, name, container, container["startupProbe"])
    for probe in ("livenessProbe", "readinessProbe"):
        ok, outcome = probe_once(container, container[probe])
        assert ok, f"{probe}: {outcome}\n{pod.logs(name)}"


def test_metrics_are_served_from_the_writable_metrics_dir(release: Release) -> None:
    assert release.app_name, "the app container was not started"
    container = release.app_container
    port = container["ports"][0]["containerPort"]
    probe_once(container, container["readinessProbe"])  # at least one recorded request
    body = scrape_until(f"http://127.0.0.1:{port}/metrics", lambda t: "http_requests_total" in t)
    assert "http_requests_total" in body, body[:500]


def test_app_container_is_still_running_without_errors(release: Release) -> None:
    assert release.app_name, "the app container was not started"
    pod, name = release.app_pod, release.app_name
    assert pod.running(name), pod.logs(name)
    logs = pod.logs(name)
    errors = [
        line
        for line in logs.splitlines()
        if line.startswith("{") and json.loads(line).get("level") in {"ERROR", "CRITICAL"}
    ]
    assert not errors, "\n".join(errors)
    assert "Traceback" not in logs, logs
