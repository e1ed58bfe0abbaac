"""For every alert of the chart: series that must make it fire (and when), and series of a
healthy service on which it must stay silent. Written against values/prod.yaml (release
"app" in namespace "app": 99.9% availability, 99.9% within 300 ms)."""

from __future__ import annotations

from dataclasses import dataclass, field

APP = 'namespace="app", service="app"'
API_OK = f'http_requests_total{{{APP}, method="GET", route="/api/v1/items", status="200"}}'
API_5XX = f'http_requests_total{{{APP}, method="GET", route="/api/v1/items", status="500"}}'
READYZ_OK = f'http_requests_total{{{APP}, method="GET", route="/readyz", status="200"}}'
READYZ_503 = f'http_requests_total{{{APP}, method="GET", route="/readyz", status="503"}}'
_ROUTE = 'method="GET", route="/api/v1/items", status="200"'
FAST_BUCKET = f'http_request_duration_seconds_bucket{{{APP}, {_ROUTE}, le="0.3"}}'
ALL_BUCKET = f'http_request_duration_seconds_bucket{{{APP}, {_ROUTE}, le="+Inf"}}'
COUNT = f"http_request_duration_seconds_count{{{APP}, {_ROUTE}}}"
POD = "app-5d8f7c9b4-x7k2p"  # a Deployment pod's name: <release>-<template hash>-<suffix>
UNAVAILABLE = 'kube_deployment_status_replicas_unavailable{namespace="app", deployment="%s"}'
RESTARTS = 'kube_pod_container_status_restarts_total{namespace="app", pod="%s", container="%s"}'
JOB = "app-migrate-0123456789"  # <release>-migrate-<hash of the pod template>
JOB_FAILED = f'kube_job_failed{{namespace="app", job_name="{JOB}", condition="%s"}}'
UNCONFIRMED = f'db_commits_unconfirmed_total{{{APP}, pod="%s", reason="%s"}}'
SLO_LABELS = {"namespace": "app", "service": "app"}


def availability(per_minute: int, errors: int) -> dict[str, str]:
    """`per_minute` API requests a minute for 5 hours, `errors` of them answered 500."""
    return {API_OK: f"0+{per_minute - errors}x300", API_5XX: f"0+{errors}x300"}


def latency(per_minute: int, slow: int) -> dict[str, str]:
    """`per_minute` API requests a minute for 5 hours, `slow` of them slower than 300 ms."""
    every = f"0+{per_minute}x300"
    return {FAST_BUCKET: f"0+{per_minute - slow}x300", ALL_BUCKET: every, COUNT: every}


@dataclass(frozen=True)
class AlertCase:
    alert: str
    series: dict[str, str]  # promtool input series (interval 1m) that make it fire
    silent_at: str  # still pending (or not yet true) at this time
    fires_at: str  # firing by this time
    labels: tuple[dict[str, str], ...]  # the firing alerts' labels, severity aside
    healthy: dict[str, str]  # a healthy service's series: silent throughout
    healthy_at: str = "3h"
    # Alerts that must NOT fire at `fires_at` on the same series: it pages for the right reason.
    others_silent: tuple[str, ...] = field(default=())


CASES = (
    AlertCase(
        "AppAvailabilityBudgetBurnFast",
        availability(1000, 20),  # 2% failing: 20x the budget
        silent_at="2m",
        fires_at="4m",
        labels=({**SLO_LABELS, "slo": "availability"},),
        healthy=availability(2000, 1),  # 0.05%: half the budget
        others_silent=("AppLatencyBudgetBurnFast", "AppDatabaseUnavailable"),
    ),
    AlertCase(
        "AppAvailabilityBudgetBurnSlow",
        availability(1000, 5),  # 0.5%: 5x, too slow to page (6x)
        silent_at="15m",
        fires_at="17m",
        labels=({**SLO_LABELS, "slo": "availability"},),
        healthy=availability(2000, 1),
        others_silent=("AppAvailabilityBudgetBurnFast",),
    ),
    AlertCase(
        "AppLatencyBudgetBurnFast",
        latency(1000, 30),  # 3% slower than 300 ms
        silent_at="2m",
        fires_at="4m",
        labels=({**SLO_LABELS, "slo": "latency"},),
        healthy=latency(2000, 1),
        others_silent=("AppAvailabilityBudgetBurnFast",),
    ),
    AlertCase(
        "AppLatencyBudgetBurnSlow",
        latency(1000, 5),
        silent_at="15m",
        fires_at="17m",
        labels=({**SLO_LABELS, "slo": "latency"},),
        healthy=latency(2000, 1),
        others_silent=("AppLatencyBudgetBurnFast",),
    ),
    AlertCase(
        "AppTargetAbsent",
        # Another release's target only: this one's is gone.
        {'up{namespace="app", service="other", pod="other-1"}': "1x30"},
        silent_at="9m",
        fires_at="11m",
        labels=({"namespace": "app", "service": "app"},),
        healthy={f'up{{{APP}, pod="{POD}"}}': "1x200"},
    ),
    AlertCase(
        "AppTargetDown",
        {f'up{{{APP}, pod="{POD}"}}': "1 1 0x30"},  # scrapes fail from minute 2
        silent_at="6m",
        fires_at="8m",
        labels=({**SLO_LABELS, "pod": POD},),
        healthy={f'up{{{APP}, pod="{POD}"}}': "1x200"},
    ),
    AlertCase(
        "AppPodsNotReady",
        {UNAVAILABLE % "app": "0 1x30"},
        silent_at="10m",
        fires_at="12m",
        labels=({"namespace": "app", "deployment": "app"},),
        # Another Deployment in the namespace is not this release's business.
        healthy={UNAVAILABLE % "app": "0x200", UNAVAILABLE % "web": "1x200"},
    ),
    AlertCase(
        "AppPodsRestarting",
        {RESTARTS % (POD, "app"): "0x5 1 2 3x30"},
        silent_at="6m",
        fires_at="8m",
        labels=({"namespace": "app", "pod": POD, "container": "app"},),
        # One restart long ago, and the migration Job's pod retrying: not the service.
        healthy={
            RESTARTS % (POD, "app"): "1x200",
            RESTARTS % (f"{JOB}-abcde", "migrate"): "0+1x200",
        },
    ),
    AlertCase(
        "AppMigrationJobFailed",
        {JOB_FAILED % "true": "0 0 1x30"},
        silent_at="1m",
        fires_at="3m",
        labels=({"namespace": "app", "job_name": JOB, "condition": "true"},),
        healthy={JOB_FAILED % "true": "0x200", JOB_FAILED % "false": "1x200"},
    ),
    AlertCase(
        "AppDatabaseUnavailable",
        # Every probe fails and so does some API traffic; the API's share alone would not page yet.
        {READYZ_503: "0+12x60", API_OK: "0+60x60"},
        silent_at="5m",
        fires_at="7m",
        labels=(dict(SLO_LABELS),),
        healthy={READYZ_OK: "0+12x200", **availability(1000, 0)},
        others_silent=("AppAvailabilityBudgetBurnFast",),
    ),
    AlertCase(
        "AppCommitsUnconfirmed",
        # One write unconfirmed at minute 6 (the standby lost), on one pod of two.
        {
            UNCONFIRMED % (POD, "sync_standby"): "0x5 1x30",
            UNCONFIRMED % ("app-5d8f7c9b4-q2w3e", "sync_standby"): "0x40",
        },
        silent_at="5m",
        fires_at="7m",
        labels=(dict(SLO_LABELS),),
        # Never any; and a worker restarting resets its counter to 0: not a new one.
        healthy={
            UNCONFIRMED % (POD, "connection_lost"): "0x200",
            UNCONFIRMED % ("app-5d8f7c9b4-q2w3e", "deadline"): "2x100 0x100",
        },
        healthy_at="150m",
        others_silent=("AppDatabaseUnavailable", "AppAvailabilityBudgetBurnFast"),
    ),
    AlertCase(
        "AppDatabasePoolSaturated",
        {
            f'db_pool_connections_checked_out{{{APP}, pod="{POD}"}}': "9x30",
            f'db_pool_size{{{APP}, pod="{POD}"}}': "10x30",
            f'db_pool_connections_checked_out{{{APP}, pod="app-5d8f7c9b4-q2w3e"}}': "1x30",
            f'db_pool_size{{{APP}, pod="app-5d8f7c9b4-q2w3e"}}': "10x30",
        },
        silent_at="9m",
        fires_at="11m",
        labels=({**SLO_LABELS, "pod": POD},),
        healthy={
            f'db_pool_connections_checked_out{{{APP}, pod="{POD}"}}': "5x200",
            f'db_pool_size{{{APP}, pod="{POD}"}}': "10x200",
        },
    ),
)
