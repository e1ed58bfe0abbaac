"""staging and prod on a live cluster, and their NetworkPolicy enforced by the cluster's CNI.

Each environment is installed from its own values file (plus only what
harness/environments.py lists and explains) into a namespace of its own, with the image
built in this run by digest, a PostgreSQL reached over verified TLS with the documented
roles, and the suite's Ingress hostname. Then, from a probe pod in another namespace:
the policy's rules hold (no way in but from the ingress controller, no way out but DNS and
the database), each checked against a connection the policy does not govern, so a
blocked connection means the policy, not a broken network.

NetworkPolicy needs a CNI that enforces it: kube-router's policy controller on a cluster
built from source (tools/from_source), kindnet's (kube-network-policies) on kind's
official node image.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.harness import environments as envs
from tests.e2e.harness import release as rel
from tests.e2e.harness.auth import E2EIssuer
from tests.e2e.harness.cluster import E2ECluster
from tests.e2e.harness.diagnostics import namespace_summary
from tests.e2e.harness.helm import Helm
from tests.e2e.harness.ingress_client import ingress_session, wait_until_served
from tests.e2e.harness.k8s_state import JobState, job_state, live_pods, pod_ready
from tests.e2e.harness.kubectl import Kubectl
from tests.e2e.harness.live import BuiltImage, E2ETools, restricted_namespace
from tests.e2e.harness.waiting import NotYet, wait_until
from tools import localcluster
from tools.localca import ensure_local_tls

pytestmark = pytest.mark.e2e

HOSTS = {"staging": "app-e2e-staging.localdev.me", "prod": "app-e2e-prod.localdev.me"}
MIN_REPLICAS = {"staging": 2, "prod": 3}  # the files' autoscaling.minReplicas
PROBE_PORT = 8080
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Environment:
    name: str
    namespace: str
    kubectl: Kubectl
    session: requests.Session
    host: str
    issuer: E2EIssuer
    digest: str

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def server_pods(self) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = self.kubectl.get_json("pods", "-l", rel.SERVER_SELECTOR)[
            "items"
        ]
        return live_pods(pods)


@pytest.fixture(scope="module")
def zone_labelled_node(e2e_cluster: E2ECluster, e2e_kubectl: Kubectl) -> None:
    """prod spreads across zones with DoNotSchedule: the node needs a zone to count."""
    for node in e2e_kubectl.get_json("nodes")["items"]:
        if envs.ZONE_LABEL not in node["metadata"]["labels"]:
            e2e_kubectl.run("label", "node", node["metadata"]["name"], f"{envs.ZONE_LABEL}=e2e-a")


@pytest.fixture(scope="module")
def base_digest(e2e_cluster: E2ECluster, e2e_tools: E2ETools, base_image: BuiltImage) -> str:
    return envs.node_image_digest(
        e2e_tools.docker, f"{e2e_cluster.name}-control-plane", f"docker.io/library/{base_image.ref}"
    )


def deploy_database(kubectl: Kubectl, namespace: str, workdir: Path) -> envs.Database:
    host = f"{envs.DB_NAME}.{namespace}.svc"
    tls = ensure_local_tls(host, workdir / "db-tls")
    kubectl.apply_json(envs.tls_secret("db-tls", namespace, tls.cert, tls.key))
    kubectl.apply_json(envs.secret(envs.CA_SECRET, namespace, {"ca.crt": tls.ca_cert.read_text()}))
    image = envs.database_image({**rel.load_values(), **rel.flavour_values()})
    for manifest in envs.database_manifests(namespace, image, "db-tls"):
        kubectl.apply_json(manifest)
    kubectl.run("rollout", "status", f"deployment/{envs.DB_NAME}", "--timeout=300s", timeout=330)
    service_password, migrator_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    cluster_sql, database_sql = envs.documented_roles_sql(service_password, migrator_password)
    envs.psql(kubectl, "postgres", cluster_sql)
    envs.psql(kubectl, "app", database_sql)
    pod = kubectl.get_json("pods", "-l", f"app.kubernetes.io/name={envs.DB_NAME}")["items"][0]
    return envs.Database(host, service_password, migrator_password, pod["status"]["podIP"])


@pytest.fixture(scope="module", params=["staging", "prod"])
def environment(
    request: pytest.FixtureRequest,
    e2e_cluster: E2ECluster,
    e2e_tools: E2ETools,
    e2e_kubectl: Kubectl,
    e2e_run_id: str,
    base_image: BuiltImage,
    base_digest: str,
    zone_labelled_node: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Environment]:
    env: str = request.param
    namespace = f"e2e-{env}-{e2e_run_id}"
    workdir = tmp_path_factory.mktemp(env)
    host = HOSTS[env]
    issuer = E2EIssuer()
    app_secret, migrator_secret = envs.values_file_secrets(env)
    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        database = deploy_database(kubectl, namespace, workdir)
        kubectl.apply_json(
            envs.secret(
                app_secret,
                namespace,
                {"DATABASE_URL": database.url("app_service", database.service_password)},
            )
        )
        kubectl.apply_json(envs.secret(migrator_secret, namespace, {
            "DATABASE_URL": database.url("app_migrator", database.migrator_password)}))  # fmt: skip
        kubectl.apply_json(issuer.secret_manifest(namespace))
        ca_cert = localcluster.ensure_tls_secret(
            e2e_cluster.context, namespace, host=host, secret="app-e2e-tls",
            tls_dir=workdir / "ingress-tls", log=print,
        )  # fmt: skip
        overlay, strings = envs.overrides(
            env, repository=f"docker.io/library/{base_image.repository}", tag=base_image.tag,
            digest=base_digest, host=host, tls_secret_name="app-e2e-tls",
            ingress_namespace=localcluster.ingress_namespace(), database=database,
            auth_values=issuer.helm_values(),
        )  # fmt: skip
        overlay_file = workdir / "e2e-values.yaml"
        overlay_file.write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
        Helm(e2e_tools.helm, namespace, e2e_cluster.kubeconfig).upgrade_install(
            rel.RELEASE, rel.CHART, values_files=(envs.VALUES[env], overlay_file),
            set_string=strings,
        )  # fmt: skip
        session = ingress_session(host, ca_bundle=ca_cert)
        environment = Environment(env, namespace, kubectl, session, host, issuer, base_digest)
        wait_until_served(session, environment.url("/openapi.json"), timeout=120,
                          diagnose=lambda: namespace_summary(kubectl))  # fmt: skip
        yield environment


def test_the_environment_runs_the_image_of_this_run_by_digest_and_serves_over_tls(
    environment: Environment,
) -> None:
    jobs = environment.kubectl.get_json("jobs", "-l", rel.MIGRATION_SELECTOR)["items"]
    assert [job_state(j) for j in jobs] == [JobState.COMPLETE], namespace_summary(
        environment.kubectl
    )

    def enough_ready() -> list[dict[str, Any]]:
        pods = [p for p in environment.server_pods() if pod_ready(p)]
        if len(pods) < MIN_REPLICAS[environment.name]:
            raise NotYet(f"{len(pods)} ready server pods")
        return pods

    pods = wait_until(enough_ready, what="autoscaling.minReplicas ready pods",
                      timeout=180, interval=2, retry_on=(NotYet,),
                      diagnose=lambda: namespace_summary(environment.kubectl))  # fmt: skip
    for pod in pods:
        (status,) = [c for c in pod["status"]["containerStatuses"] if c["name"] == "app"]
        assert status["imageID"].endswith(environment.digest), status

    # Only the API is public; a token is required, a valid one with the scope is served.
    items = environment.url("/api/v1/items")
    assert environment.session.get(environment.url("/readyz"), timeout=10).status_code == 404
    assert environment.session.get(items, timeout=10).status_code == 401
    read = environment.issuer.bearer("items:read")
    assert environment.session.get(items, headers=read, timeout=10).status_code == 200
    plain = environment.session.get(f"http://{environment.host}/openapi.json",
                                    allow_redirects=False, timeout=10)  # fmt: skip
    assert plain.status_code in (301, 302, 307, 308)


# -- NetworkPolicy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe(
    e2e_kubectl: Kubectl,
    e2e_run_id: str,
    base_image: BuiltImage,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Kubectl, str]]:
    """A pod in a namespace no policy names, listening on PROBE_PORT: (kubectl, its IP)."""
    namespace = f"e2e-probe-{e2e_run_id}"
    with restricted_namespace(e2e_kubectl, namespace, request) as kubectl:
        kubectl.apply_json(probe_pod(namespace, base_image.ref))
        kubectl.run("wait", "--for=condition=Ready", "pod/probe", "--timeout=180s", timeout=200)
        yield kubectl, kubectl.get_json("pod", "probe")["status"]["podIP"]


def probe_pod(namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace, "labels": {"app": "probe"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": [
                        "python",
                        "-m",
                        "http.server",
                        str(PROBE_PORT),
                        "--directory",
                        "/tmp",
                    ],
                    "readinessProbe": {"tcpSocket": {"port": PROBE_PORT}, "periodSeconds": 2},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def connects(kubectl: Kubectl, pod: str, container: str, address: str, port: int) -> bool:
    """Whether `container` of `pod` opens a TCP connection to address:port."""
    script = (
        "import socket, sys\n"
        f"try: socket.create_connection(({address!r}, {port}), timeout={CONNECT_TIMEOUT_S})\n"
        "except OSError as e: print(e); sys.exit(1)\n"
    )
    proc = kubectl.run("exec", pod, "-c", container, "--", "python", "-c", script,
                       check=False, timeout=60)  # fmt: skip
    return proc.returncode == 0


def test_network_policy_lets_in_only_the_ingress_and_out_only_dns_and_the_database(
    environment: Environment, probe: tuple[Kubectl, str]
) -> None:
    probe_kubectl, probe_ip = probe
    (app_pod, *_) = [p for p in environment.server_pods() if pod_ready(p)]
    app_ip = app_pod["status"]["podIP"]
    app_name = f"pod/{app_pod['metadata']['name']}"
    db_ip = environment.kubectl.get_json("pods", "-l", f"app.kubernetes.io/name={envs.DB_NAME}")[
        "items"
    ][0]["status"]["podIP"]

    # In: the probe reaches the database pod (no policy there), not the app pod.
    assert connects(probe_kubectl, "pod/probe", "probe", db_ip, envs.DB_PORT), "probe is cut off"
    assert not connects(probe_kubectl, "pod/probe", "probe", app_ip, 8000), (
        f"a pod in another namespace reached the {environment.name} app pod past its NetworkPolicy"
    )
    # ... while the ingress controller's requests reach it (the test above, here once more).
    assert environment.session.get(environment.url("/openapi.json"), timeout=10).status_code == 200

    # Out: the app pod reaches its database, and not the probe.
    assert connects(environment.kubectl, app_name, "app", db_ip, envs.DB_PORT)
    assert not connects(environment.kubectl, app_name, "app", probe_ip, PROBE_PORT), (
        f"the {environment.name} app pod reached the probe past its NetworkPolicy's egress rules"
    )
