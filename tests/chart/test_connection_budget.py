"""The database connection budget: what a release can open at its peak fits the server.

Peak = pods (HPA maximum, or replicaCount) plus the rolling-update surge, times workers
per pod, times (pool + overflow) per worker, plus the migration Job.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from tests.chart.chartlib import Render, render, run_helm, template_args, values_file

pytestmark = pytest.mark.helm


CHART_VALUES = Path(__file__).parents[2] / "charts" / "app" / "values.yaml"


def peak_connections(rendered: Render) -> int:
    config = rendered.config_map()["data"]
    hpa = [o for o in rendered.objects if o["kind"] == "HorizontalPodAutoscaler"]
    deployment = rendered.one("Deployment", "app")
    pods = hpa[0]["spec"]["maxReplicas"] if hpa else deployment["spec"]["replicas"]
    surge = str(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"])
    surge_pods = math.ceil(pods * int(surge[:-1]) / 100) if surge.endswith("%") else int(surge)
    per_pod = int(config["GUNICORN_WORKERS"]) * (
        int(config["DB_POOL_SIZE"]) + int(config["DB_MAX_OVERFLOW"])
    )
    return (pods + surge_pods) * per_pod + 1


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_environment_fits_its_database(helm4: str, env: str) -> None:
    chart_values = yaml.safe_load(CHART_VALUES.read_text())
    env_values = yaml.safe_load(values_file(env).read_text()) or {}
    database = {**chart_values["database"], **env_values.get("database", {})}
    budget = database["maxConnections"] - database["reservedConnections"]
    assert peak_connections(render(helm4, env)) <= budget


def test_prod_budget_is_the_documented_one(helm4: str) -> None:
    assert peak_connections(render(helm4, "prod")) == 101


@pytest.mark.parametrize(
    "sets",
    [
        ("config.DB_POOL_SIZE=5",),
        ("autoscaling.maxReplicas=60",),
        ("database.maxConnections=100",),
    ],
)
def test_a_release_over_budget_is_refused_naming_the_numbers(
    helm4: str, helm3: str, sets: tuple[str, ...]
) -> None:
    for helm in (helm4, helm3):
        result = run_helm(helm, *template_args("prod", sets))
        assert result.returncode != 0
        assert "database connection budget exceeded" in result.stderr
        assert "database.maxConnections" in result.stderr
        assert "config.GUNICORN_WORKERS" in result.stderr
