"""The chart tests' helm fixtures, for the rules and dashboard as the chart renders them."""

from tests.chart.conftest import helm3, helm4, renders  # noqa: F401 - re-exported fixtures
