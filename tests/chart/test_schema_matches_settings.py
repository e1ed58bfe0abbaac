"""values.schema.json and service/config.py agree on every setting's range, so a value
the chart accepts never crash-loops the pods at start (and the reverse)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.config import ConfigError, Settings
from tests.chart.chartlib import run_helm, template_args

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "charts" / "app" / "values.schema.json").read_text()
)
CONFIG = SCHEMA["properties"]["config"]["properties"]
BASE = {"DATABASE_URL": "postgresql://a:b@db/app?sslmode=require", "GUNICORN_THREADS": "1",
        "AUTH_ISSUER": "https://login.example.com", "AUTH_AUDIENCE": "items-api"}  # fmt: skip
NUMERIC = sorted(k for k, v in CONFIG.items() if v.get("type") in ("integer", "number"))


# The settings another one's range depends on, set so that only the one tested is at its
# edge: the pool holds every thread; the deadline lies between the statement timeout and
# 1 s before gunicorn's timeout.
COMPANIONS = {
    "GUNICORN_THREADS": {"DB_POOL_SIZE": "100"},
    "GUNICORN_TIMEOUT": {"DB_DEADLINE_MS": "1000", "DB_STATEMENT_TIMEOUT_MS": "500"},
    "DB_DEADLINE_MS": {"GUNICORN_TIMEOUT": "3600", "DB_STATEMENT_TIMEOUT_MS": "0"},
    "DB_STATEMENT_TIMEOUT_MS": {"GUNICORN_TIMEOUT": "3600", "DB_DEADLINE_MS": "3599000"},
}


def accepted(name: str, value: float) -> bool:
    text = str(int(value)) if CONFIG[name]["type"] == "integer" else str(value)
    env = {**BASE, **COMPANIONS.get(name, {}), name: text}
    try:
        Settings.from_env(env)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", NUMERIC)
def test_schema_bounds_are_the_services_bounds(name: str) -> None:
    spec = CONFIG[name]
    assert "minimum" in spec and "maximum" in spec, f"config.{name} needs both bounds"
    step = 1 if spec["type"] == "integer" else 0.01
    assert accepted(name, spec["minimum"]) and accepted(name, spec["maximum"])
    assert not accepted(name, spec["minimum"] - step), f"service accepts below config.{name}"
    assert not accepted(name, spec["maximum"] + step), f"service accepts above config.{name}"


@pytest.mark.helm
def test_a_pool_smaller_than_the_threads_is_refused_at_render(helm4: str) -> None:
    result = run_helm(helm4, *template_args("prod", ["config.GUNICORN_THREADS=4"]))
    assert result.returncode != 0
    assert "config.DB_POOL_SIZE (1) + config.DB_MAX_OVERFLOW (0)" in result.stderr
    assert "config.GUNICORN_THREADS (4)" in result.stderr


@pytest.mark.helm
@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["config.DB_DEADLINE_MS=5000"],
         "config.DB_DEADLINE_MS (5000) must be above config.DB_STATEMENT_TIMEOUT_MS (5000)"),
        (["config.DB_DEADLINE_MS=29500"],
         "config.DB_DEADLINE_MS (29500) must end a request at least 1 s before "
         "config.GUNICORN_TIMEOUT (30 s)"),
    ],
)  # fmt: skip
def test_a_deadline_the_service_would_refuse_is_refused_at_render(
    helm4: str, sets: list[str], message: str
) -> None:
    result = run_helm(helm4, *template_args("prod", sets))
    assert result.returncode != 0
    assert message in result.stderr
