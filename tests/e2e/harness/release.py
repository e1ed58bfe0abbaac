"""How the suite installs the chart: values/dev.yaml plus a small overlay, and what to expect.

The overlay only moves the Ingress to the suite's own hostname (E2E_INGRESS_HOST): on a
cluster where `make dev` already serves app.localdev.me, ingress-nginx's admission webhook
would refuse a second Ingress for the same host and path. Everything else is dev.yaml.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "app"
DEV_VALUES = ROOT / "values" / "dev.yaml"
RELEASE = "app"
# Names the chart gives the release "app" (charts/app: fullname, Service, component labels).
SERVICE = "app"
SERVICE_PORT = 80
DEPLOYMENT = "app"
SERVER_SELECTOR = "app.kubernetes.io/instance=app,app.kubernetes.io/component=server"
MIGRATION_SELECTOR = "app.kubernetes.io/instance=app,app.kubernetes.io/component=migration"
DEFAULT_INGRESS_HOST = "app-e2e.localdev.me"
# The failing-migration test: its Job fails at this deadline at the latest (the chart's
# backoffLimit 4 spaces five attempts over about 2.5 minutes, so the deadline ends it
# first); Helm's --timeout is just past it,
# so the release is reported failed minutes sooner than with an upgrade's usual 600 s.
FAILING_JOB_DEADLINE_S = 120
FAILING_RELEASE_TIMEOUT_S = FAILING_JOB_DEADLINE_S + 60


class ValuesShapeError(AssertionError):
    pass


@dataclass(frozen=True)
class IngressPlan:
    host: str
    tls_secret: str
    overlay: dict[str, Any]


def load_values(path: Path = DEV_VALUES) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        raise ValuesShapeError(f"{path} is not a YAML mapping")
    return values


def ingress_plan(dev_values: dict[str, Any], host: str) -> IngressPlan:
    """dev.yaml's Ingress, moved to `host`; its TLS Secret name stays dev.yaml's."""
    ingress = dev_values.get("ingress")
    if not isinstance(ingress, dict) or not ingress.get("enabled"):
        raise ValuesShapeError(
            "values/dev.yaml has no enabled `ingress`; the e2e suite tests the HTTPS ingress "
            "path of the dev environment"
        )
    hosts = ingress.get("hosts") or []
    tls = ingress.get("tls") or []
    if len(hosts) != 1 or len(tls) != 1 or not tls[0].get("secretName"):
        raise ValuesShapeError(
            "values/dev.yaml's ingress must have one host and one TLS entry with a secretName "
            f"(found {len(hosts)} hosts, {len(tls)} TLS entries); update "
            "tests/e2e/harness/release.py if that changed on purpose"
        )
    moved = copy.deepcopy(ingress)
    moved["hosts"][0]["host"] = host
    moved["tls"][0]["hosts"] = [host]
    return IngressPlan(host=host, tls_secret=str(tls[0]["secretName"]), overlay={"ingress": moved})


def write_overlay(plan: IngressPlan, directory: Path) -> Path:
    path = directory / "e2e-ingress-values.yaml"
    path.write_text(
        "# Written by the e2e suite: dev.yaml's Ingress on the suite's own hostname (and, on\n"
        "# a cluster built from source, the dev database image built there).\n"
        + yaml.safe_dump({**plan.overlay, **flavour_values()}, sort_keys=False),
        encoding="utf-8",
    )
    return path


def flavour_values() -> dict[str, Any]:
    """What a cluster built from source changes in dev.yaml: the dev database's image.

    values/dev.yaml runs the official postgres image, which our CI machines cannot pull;
    their node image preloads a PostgreSQL built from the Debian base with the same
    contract (local/from-source/dev-values.yaml). Nothing on the official flavour.
    """
    from tools import localcluster

    if not localcluster.from_source():
        return {}
    from tools.from_source.build import dev_values

    return dev_values()


def image_values(repository: str, tag: str) -> dict[str, str]:
    # IfNotPresent: the image was `kind load`ed into the node; there is no registry to pull
    # from, and a unique tag per build means a stale image is never reused by mistake.
    return {"image.repository": repository, "image.tag": tag, "image.pullPolicy": "IfNotPresent"}


def failing_release_values() -> dict[str, str | int]:
    """What test 4 adds to its upgrade: a Job deadline the test's waits are sized to."""
    return {"migration.activeDeadlineSeconds": FAILING_JOB_DEADLINE_S}
