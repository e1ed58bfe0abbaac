"""Which cluster the suite uses, and how each missing prerequisite is named."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.harness.prerequisites import (
    DEFAULT_CLUSTER_NAME,
    SettingError,
    choose_cluster,
    cluster_problem,
    docker_problem,
    env_flag,
    internet_problem,
    missing_tool_problems,
    ports_in_use,
    ports_problem,
    skip_reason,
)
from tests.e2e.unit.standins import FakeKubectl


def kubeconfig(tmp_path: Path, context: str | None) -> Path:
    path = tmp_path / "kubeconfig"
    config: dict[str, object] = {"apiVersion": "v1", "kind": "Config", "contexts": []}
    if context is not None:
        config["current-context"] = context
    path.write_text(yaml.safe_dump(config))
    return path


def test_default_is_a_cluster_the_suite_creates() -> None:
    choice = choose_cluster({})
    assert choice.create
    assert choice.name == DEFAULT_CLUSTER_NAME
    assert (choice.keep, choice.required) == (False, False)


def test_cluster_name_keep_and_required_come_from_the_environment() -> None:
    choice = choose_cluster(
        {"E2E_CLUSTER_NAME": "mine", "E2E_KEEP_CLUSTER": "1", "E2E_REQUIRED": "true"}
    )
    assert (choice.name, choice.keep, choice.required) == ("mine", True, True)


@pytest.mark.parametrize("name", ["Upper", "-dash", "under_score", "x" * 51])
def test_an_invalid_cluster_name_is_refused(name: str) -> None:
    with pytest.raises(SettingError, match=r"E2E_CLUSTER_NAME: .* not a valid kind cluster name"):
        choose_cluster({"E2E_CLUSTER_NAME": name})


def test_an_existing_kind_cluster_from_e2e_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "kind-app-local")
    choice = choose_cluster({"E2E_KUBECONFIG": str(path)})
    assert not choice.create
    assert choice.existing_kubeconfig == path
    assert choice.name == "app-local"
    assert choice.keep  # never delete a cluster the suite did not create


def test_pytest_kind_kubeconfig_option_and_opt_in_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "kind-dev")
    assert choose_cluster({}, kubeconfig_option=str(path)).name == "dev"
    # KUBECONFIG alone is not enough: a developer's everyday context must not be used
    # by accident; E2E_USE_KUBECONFIG=1 says it is meant.
    assert choose_cluster({"KUBECONFIG": str(path)}).create
    assert choose_cluster({"KUBECONFIG": str(path), "E2E_USE_KUBECONFIG": "1"}).name == "dev"


def test_a_context_that_is_not_kind_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, "prod-eu-west")
    with pytest.raises(SettingError) as caught:
        choose_cluster({"E2E_KUBECONFIG": str(path)})
    message = str(caught.value)
    assert "'prod-eu-west' is not a kind cluster" in message
    assert "kubectl config use-context kind-<name>" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"E2E_KUBECONFIG": "/nonexistent/kubeconfig"}, "no such file"),
        ({"E2E_KUBECONFIG": "/a:/b"}, "lists several files"),
        ({"E2E_USE_KUBECONFIG": "1"}, "KUBECONFIG is not set"),
        ({"E2E_KEEP_CLUSTER": "maybe"}, "E2E_KEEP_CLUSTER='maybe' is not a yes/no value"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingError, match=expected):
        choose_cluster(env)


def test_a_kubeconfig_without_current_context(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="has no current-context"):
        choose_cluster({"E2E_KUBECONFIG": str(kubeconfig(tmp_path, None))})


def test_env_flag() -> None:
    assert env_flag({"X": "Yes"}, "X") is True
    assert env_flag({"X": "0"}, "X") is False
    assert env_flag({}, "X") is False


def test_missing_tools_are_named_with_the_command_that_installs_them() -> None:
    problems = missing_tool_problems({"kind": None, "helm": "/bin/helm", "docker": None})
    assert problems == [
        "`kind` not found: run `make tools` (installs pinned versions into bin/), "
        "or set $KIND to its path",
        "`docker` not found: run `make tools` (installs pinned versions into bin/), "
        "or set $DOCKER to its path",
    ]
    assert skip_reason(problems).startswith("live e2e suite needs a kind cluster: `kind` not")


def fake_tool(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_a_docker_engine_that_does_not_answer(tmp_path: Path) -> None:
    docker = fake_tool(
        tmp_path,
        "docker",
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1',
    )
    problem = docker_problem(docker)
    assert problem is not None
    assert "Cannot connect to the Docker daemon" in problem
    assert problem.endswith("start Docker")
    assert docker_problem(fake_tool(tmp_path, "ok-docker", "echo 27.3.1")) is None


def test_internet_problem_names_what_needs_it() -> None:
    def offline(url: str, **kwargs: object) -> requests.Response:
        raise requests.ConnectionError("Name or service not known")

    def online(url: str, **kwargs: object) -> requests.Response:
        response = requests.Response()
        response.status_code = 401  # what the registry says to anonymous clients
        return response

    problem = internet_problem("https://registry.example/v2/", get=offline)
    assert problem is not None
    assert "no internet: https://registry.example/v2/ is unreachable (ConnectionError)" in problem
    assert internet_problem("https://registry.example/v2/", get=online) is None


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_ports_in_use(listening_port: int) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    assert ports_in_use((listening_port, free)) == [listening_port]
    problem = ports_problem([listening_port], "app-e2e")
    assert problem is not None
    assert f"127.0.0.1:{listening_port} already in use" in problem
    assert "E2E_KUBECONFIG" in problem
    assert ports_problem([], "app-e2e") is None


def test_an_unreachable_cluster_is_named(fake_kubectl: FakeKubectl, tmp_path: Path) -> None:
    problem = cluster_problem(fake_kubectl.kubectl.binary, tmp_path / "kubeconfig")
    assert problem is not None
    assert f"the cluster in {tmp_path / 'kubeconfig'} does not answer" in problem
    assert fake_kubectl.invocations()[0][-3:] == ["get", "--raw", "/readyz"]
