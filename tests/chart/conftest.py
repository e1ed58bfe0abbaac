"""Renders shared by the chart tests: each environment once per session, with Helm 4."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import ENVIRONMENTS, Render, helm_binary, render


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


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rendered(renders: dict[str, Render], env: str) -> Render:
    return renders[env]
