"""staging and prod on the live cluster: values/staging.yaml and values/prod.yaml as they
are, plus only what a one-node test cluster without the real outside world needs.

What the suite sets on top of each file, and why (`overrides()`):
- image: the image built in this run, by digest (both files set image.requireDigest), as
  `make promote` writes it;
- the database: a PostgreSQL in the release's namespace, reached over verified TLS
  (sslmode=verify-full against a local CA, database.caSecret) with the two roles of
  docs/reliability.md: the app's Secret `app-database` and the Job's
  `app-database-migrator` are the names both files use;
- auth: the suite's test keys mounted through auth.jwks (the files' issuers are
  placeholders), so tokens the suite mints are verified without an identity provider;
- ingress: the suite's own hostname (with the file's paths), its TLS Secret from a local CA
  (the files' hosts and cert-manager issuers are placeholders);
- resources.requests.cpu: 50m, so every pod fits on a 2-CPU node (limits stay);
- serviceMonitor and prometheusRule off: the cluster has no Prometheus Operator CRDs;
- networkPolicy: the ingress controller's namespace of this cluster (ingress-nginx, or
  ingress-traefik when built from source); prod's database.cidrs: the database pod's
  address, as prod requires one.
The cluster's node gets a zone label: prod requires spreading across zones.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[3]
VALUES = {env: ROOT / "values" / f"{env}.yaml" for env in ("staging", "prod")}
CHART_VALUES = ROOT / "charts" / "app" / "values.yaml"
ROLES_DOC = ROOT / "docs" / "reliability.md"
DB_NAME = "db"
DB_PORT = 5432
DB_UID = 70  # the postgres user of the -alpine image, and of the image built from source
CA_SECRET = "app-database-ca"
APP_SECRET = "app-database"
MIGRATOR_SECRET = "app-database-migrator"
ZONE_LABEL = "topology.kubernetes.io/zone"
CPU_REQUEST = "50m"


@dataclass(frozen=True)
class Database:
    host: str  # db.<namespace>.svc: the name its certificate is for
    service_password: str
    migrator_password: str
    pod_ip: str

    def url(self, user: str, password: str) -> str:
        return (
            f"postgresql://{user}:{password}@{self.host}:{DB_PORT}/app"
            "?sslmode=verify-full&sslrootcert=/run/secrets/database-ca/ca.crt"
        )


def values_file_secrets(env: str) -> tuple[str, str]:
    """The Secret names the environment's values file reads the two URLs from."""
    values = yaml.safe_load(VALUES[env].read_text(encoding="utf-8"))
    return values["existingSecret"], values["migration"]["existingSecret"]


def values_file_paths(env: str) -> list[dict[str, str]]:
    """The paths the environment's values file publishes (only the API): kept as they are."""
    values = yaml.safe_load(VALUES[env].read_text(encoding="utf-8"))
    (first, *_) = values["ingress"]["hosts"]
    paths: list[dict[str, str]] = first["paths"]
    return paths


def database_image(dev_values: dict[str, Any]) -> str:
    """The PostgreSQL image this cluster runs for dev (the chart's, or the flavour's)."""
    chart = yaml.safe_load(CHART_VALUES.read_text(encoding="utf-8"))["devDatabase"]["image"]
    image = {**chart, **dev_values.get("devDatabase", {}).get("image", {})}
    return f"{image['repository']}:{image['tag']}"


def documented_roles_sql(service_password: str, migrator_password: str) -> tuple[str, str]:
    """docs/reliability.md's two SQL blocks (cluster-wide, then in `app`), passwords filled."""
    section = ROLES_DOC.read_text().split("## Database roles", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    if len(blocks) != 2:
        raise AssertionError("docs/reliability.md: expected two ```sql blocks, Database roles")
    fill = {"MIGRATOR_PASSWORD": migrator_password, "SERVICE_PASSWORD": service_password}
    return tuple(re.sub("|".join(fill), lambda m: fill[m[0]], b) for b in blocks)  # type: ignore[return-value]


def secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def database_manifests(namespace: str, image: str, tls_secret: str) -> list[dict[str, Any]]:
    """A PostgreSQL Deployment and Service under Pod Security "restricted", TLS on."""
    labels = {"app.kubernetes.io/name": DB_NAME, "app.kubernetes.io/part-of": "e2e-suite"}
    password = secrets.token_urlsafe(16)
    container = {
        "name": "postgresql",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "postgres",
            "-c",
            "ssl=on",
            "-c",
            "ssl_cert_file=/tls/tls.crt",
            "-c",
            "ssl_key_file=/tls/tls.key",
        ],
        "env": [
            {"name": "POSTGRES_PASSWORD", "value": password},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgresql", "containerPort": DB_PORT}],
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "--host=127.0.0.1", "--username=postgres"]},
            "periodSeconds": 2,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "tls", "mountPath": "/tls", "readOnly": True},
        ],
    }
    pod = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": DB_UID,
            "runAsGroup": DB_UID,
            "fsGroup": DB_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "run", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            # 0640, group fsGroup: PostgreSQL accepts a root-owned key only with that mode.
            {"name": "tls", "secret": {"secretName": tls_secret, "defaultMode": 0o640}},
        ],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": DB_NAME, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": DB_NAME, "namespace": namespace, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "postgresql", "port": DB_PORT}]},
        },
    ]


def tls_secret(name: str, namespace: str, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert.read_bytes()).decode(),
            "tls.key": base64.b64encode(key.read_bytes()).decode(),
        },
    }


def psql(kubectl: Kubectl, database: str, sql: str) -> None:
    """SQL as the superuser over the pod's local socket (trust), stopping at the first error."""
    kubectl.run(
        "exec", "-i", f"deployment/{DB_NAME}", "--", "psql", "--username=postgres",
        f"--dbname={database}", "--set=ON_ERROR_STOP=1", "--quiet", input_text=sql,
    )  # fmt: skip


def overrides(
    env: str,
    *,
    repository: str,
    tag: str,
    digest: str,
    host: str,
    tls_secret_name: str,
    ingress_namespace: str,
    database: Database,
    auth_values: dict[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """(values overlay, --set-string pairs) for `helm upgrade --install` of `env`."""
    overlay: dict[str, Any] = {
        "ingress": {
            "annotations": {},
            "hosts": [{"host": host, "paths": values_file_paths(env)}],
            "tls": [{"secretName": tls_secret_name, "hosts": [host]}],
        },
        "httpRoute": {"hostnames": [host]},
        "resources": {"requests": {"cpu": CPU_REQUEST}},
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "database": {"caSecret": CA_SECRET},
        "networkPolicy": {"ingressControllerNamespace": ingress_namespace},
    }
    if env == "prod":
        overlay["networkPolicy"]["database"] = {"cidrs": [f"{database.pod_ip}/32"]}
    strings = {
        "image.repository": repository,
        "image.tag": tag,
        "image.digest": digest,
        **auth_values,
    }
    return overlay, strings


def node_image_digest(docker: str, node: str, image: str) -> str:
    """The manifest digest of a `kind load`ed image in the node, also made resolvable by
    digest (`<repository>@sha256:...`), as a registry pull would leave it: what a pod whose
    image is pinned by digest, like staging's and prod's, refers to."""
    from tests.e2e.harness import commands

    listing = commands.run(
        [docker, "exec", node, "ctr", "--namespace=k8s.io", "images", "ls", f"name=={image}"],
        timeout=60,
    ).stdout.splitlines()
    rows = [line.split() for line in listing[1:] if line.strip()]
    if len(rows) != 1 or not rows[0][2].startswith("sha256:"):
        raise AssertionError(
            f"{image} in {node}: expected one image, `ctr images ls` says {listing}"
        )
    digest = rows[0][2]
    repository = image.rsplit(":", 1)[0]
    commands.run(
        [docker, "exec", node, "ctr", "--namespace=k8s.io", "images", "tag", "--force", image,
         f"{repository}@{digest}"],
        timeout=60,
    )  # fmt: skip
    return digest
