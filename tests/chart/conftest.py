"""Renders shared by the chart tests: each environment once per session, with Helm 4."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import CLOUDNATIVE_PG, ENVIRONMENTS, Render, helm_binary, render

# Every environment, and prod on CloudNativePG: what the security and secret-handling
# tests hold every deployment to.
DEPLOYMENTS = (*ENVIRONMENTS, "prod+cloudnative-pg")


@pytest.fixture(scope="session")
def helm4() -> str:
    return helm_binary(4)


@pytest.fixture(scope="session")
def helm3() -> str:
    return helm_binary(3)


@pytest.fixture(scope="session")
def renders(helm4: str) -> dict[str, Render]:
    """values/<env>.yaml rendered as a deployment of that environment would render it."""
    return {env: render(helm4, env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def deployments(renders: dict[str, Render], helm4: str) -> dict[str, Render]:
    return {**renders, DEPLOYMENTS[-1]: render(helm4, "prod", extra_values=[CLOUDNATIVE_PG])}


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=DEPLOYMENTS)
def deployed(deployments: dict[str, Render], request: pytest.FixtureRequest) -> Render:
    return deployments[str(request.param)]


@pytest.fixture
def rendered(renders: dict[str, Render], env: str) -> Render:
    return renders[env]
