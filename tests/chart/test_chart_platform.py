"""What a platform team running the chart under Argo CD or Flux on a managed cluster
needs: future Kubernetes minors, honest image names and version labels, Bitnami-named
extension knobs, sync ordering, a migration Job that recovers, configurable NetworkPolicy
peers, Gateway API. Rendered with Helm 4 and Helm 3."""

from __future__ import annotations

import pytest

from tests.chart.chartlib import (
    PLATFORM_KNOBS,
    ROOT,
    TEST_DIGEST,
    TEST_TAG,
    Obj,
    Render,
    helm_binary,
    pod_specs,
    render,
    run_helm,
    template_args,
)

pytestmark = pytest.mark.helm

HELM_MAJORS = (4, 3)


@pytest.fixture(params=HELM_MAJORS, ids=lambda m: f"helm{m}")
def helm(request: pytest.FixtureRequest) -> str:
    return helm_binary(int(request.param))


def version_labels(rendered: Render) -> dict[str, str | None]:
    """app.kubernetes.io/version of every pod of the app image the release creates, by pod
    (the dev database is labelled with its PostgreSQL tag: test_chart_objects.py)."""
    return {
        where: meta["labels"].get("app.kubernetes.io/version")
        for where, meta, _ in pod_specs(rendered)
        if meta["labels"].get("app.kubernetes.io/name") == "app"
        and meta["labels"].get("app.kubernetes.io/component") != "dev-database"
    }


# -- Kubernetes versions ------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", ["1.38.0", "1.45.2", "1.40.1-eks-1234567"])
def test_a_future_kubernetes_minor_still_renders(helm: str, kube_version: str) -> None:
    """A managed cluster upgrades itself: an unchanged release must keep syncing."""
    result = run_helm(helm, *template_args("prod"), "--kube-version", kube_version)
    assert result.returncode == 0, result.stderr


def test_a_kubernetes_older_than_the_lower_bound_is_refused(helm: str) -> None:
    result = run_helm(helm, *template_args("prod"), "--kube-version", "1.29.9")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr or "Kubernetes version" in result.stderr


# -- images and versions ------------------------------------------------------------------


def test_no_image_is_guessed_from_app_version(helm: str) -> None:
    result = run_helm(helm, *template_args(None, ["existingSecret=db"]))
    assert result.returncode != 0
    assert "image.digest or image.tag is required" in result.stderr


def test_pods_are_labelled_with_the_tag_they_run(helm: str) -> None:
    rendered = render(helm, "dev")
    labels = version_labels(rendered)
    assert len(labels) >= 3, labels  # server, migration, helm test
    assert set(labels.values()) == {TEST_TAG}


def test_a_release_passing_tag_and_digest_pulls_the_digest_and_labels_the_tag(helm: str) -> None:
    rendered = render(helm, "prod", ["image.tag=2.0.1", "image.repository=reg.example/service"])
    for where, _, spec in pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if "service" in container["image"]:
                assert container["image"] == f"reg.example/service:2.0.1@{TEST_DIGEST}", where
    assert set(version_labels(rendered).values()) == {"2.0.1"}


def test_a_bare_digest_carries_no_invented_version(helm: str) -> None:
    """Without a tag the label comes from image.version, or is left off: never appVersion."""
    rendered = render(helm, "prod")
    assert set(version_labels(rendered).values()) == {None}
    for obj in rendered.objects:
        assert "app.kubernetes.io/version" not in obj["metadata"].get("labels", {}), obj["kind"]
    rendered = render(helm, "prod", ["image.version=2.0.1"])
    assert set(version_labels(rendered).values()) == {"2.0.1"}


def test_staging_and_prod_do_not_pull_a_digest_again(helm: str) -> None:
    for env in ("staging", "prod"):
        for where, _, spec in pod_specs(render(helm, env)):
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                if "@sha256:" in container["image"]:
                    assert container["imagePullPolicy"] == "IfNotPresent", f"{env} {where}"


def app_pod_spec(rendered: Render) -> Obj:
    spec: Obj = rendered.deployment()["spec"]["template"]["spec"]
    return spec


# -- Kubernetes sub-objects and Bitnami-named knobs ----------------------------------------

KUBERNETES_FIELDS = [
    "podSecurityContext.supplementalGroups[0]=2000",
    "podSecurityContext.supplementalGroupsPolicy=Strict",
    "podSecurityContext.appArmorProfile.type=RuntimeDefault",
    "containerSecurityContext.appArmorProfile.type=RuntimeDefault",
    "resources.requests.ephemeral-storage=100Mi",
    "resources.limits.ephemeral-storage=1Gi",
    "migration.resources.limits.ephemeral-storage=200Mi",
    "probes.startup.initialDelaySeconds=1",
    "probes.readiness.successThreshold=2",
    "podDisruptionBudget.minAvailable=2",
    "tolerations[0].key=dedicated",
    "tolerations[0].operator=Exists",
]


def test_fields_kubernetes_accepts_are_accepted_and_rendered(helm: str) -> None:
    rendered = render(helm, "prod", KUBERNETES_FIELDS)
    spec = app_pod_spec(rendered)
    assert spec["securityContext"]["supplementalGroups"] == [2000]
    assert spec["securityContext"]["appArmorProfile"] == {"type": "RuntimeDefault"}
    app = spec["containers"][0]
    assert app["resources"]["limits"]["ephemeral-storage"] == "1Gi"
    assert app["startupProbe"]["initialDelaySeconds"] == 1
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2 and "maxUnavailable" not in pdb


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("podSecurityContext.supplementalGroup[0]=2000", "supplementalGroup"),
        ("containerSecurityContext.readOnlyRootFilesytem=true", "readOnlyRootFilesytem"),
        ("podSecurityContext.appArmorProfile.typ=RuntimeDefault", "typ"),
        ("resources.limit.cpu=1", "limit"),
        ("probes.liveness.exec.command[0]=true", "exec"),
        ("tolerations[0].efect=NoSchedule", "efect"),
        ("extraVolumes[0].emptyDir.medum=Memory", "medum"),
        ("sidecars[0].nam=proxy", "nam"),
    ],
)
def test_a_misspelt_kubernetes_field_is_still_refused(helm: str, setting: str, field: str) -> None:
    result = run_helm(helm, *template_args("prod", [setting]))
    assert result.returncode != 0, f"{setting} rendered"
    assert field in result.stderr


def test_bitnami_named_knobs_reach_the_pods(helm: str) -> None:
    rendered = render(helm, "prod", PLATFORM_KNOBS)
    spec = app_pod_spec(rendered)
    job_spec = rendered.migration_job()["spec"]["template"]["spec"]
    for pod in (spec, job_spec):
        assert pod["priorityClassName"] == "business-critical"
        assert {"name": "db-ca", "configMap": {"name": "db-ca"}} in pod["volumes"]
    app_image_containers = [*spec["initContainers"][:1], spec["containers"][0]]
    for container in [*app_image_containers, job_spec["containers"][0]]:
        assert {"secretRef": {"name": "app-extra-env"}} in container["envFrom"], container["name"]
        mount = {"name": "db-ca", "mountPath": "/etc/db-ca", "readOnly": True}
        assert mount in container["volumeMounts"], container["name"]
    assert [c["name"] for c in spec["containers"]] == ["app", "log-shipper"]
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-schema", "warm-cache"]


def test_init_containers_render_without_wait_for_schema(helm: str) -> None:
    rendered = render(helm, "prod", [*PLATFORM_KNOBS, "migration.waitForSchema.enabled=false"])
    assert [c["name"] for c in app_pod_spec(rendered)["initContainers"]] == ["warm-cache"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("extraVolumes[0].name=tmp", 'extraVolumes[0].name "tmp" is a volume of the chart'),
        (
            "extraVolumeMounts[0].mountPath=/run/metrics",
            'extraVolumeMounts[0].mountPath "/run/metrics" is mounted by the chart',
        ),
    ],
)
def test_knobs_cannot_replace_the_charts_own_volumes(helm: str, setting: str, message: str) -> None:
    sets = [setting, "extraVolumes[0].emptyDir.medium=Memory", "extraVolumeMounts[0].name=x"]
    sets += ["extraVolumeMounts[0].mountPath=/x"] if "mountPath" not in setting else []
    sets += ["extraVolumes[0].name=x"] if "extraVolumes" not in setting else []
    result = run_helm(helm, *template_args("prod", sets))
    assert result.returncode != 0
    assert message in result.stderr


# -- Argo CD ordering and migration recovery -----------------------------------------------

WAVE = "argocd.argoproj.io/sync-wave"


def wave(obj: Obj) -> int:
    return int(obj["metadata"].get("annotations", {}).get(WAVE, 0))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_prerequisite_of_the_migration_job_syncs_before_it(helm: str, env: str) -> None:
    """A default-deny namespace's first sync: the Job needs its config, Secret, account,
    DNS and database egress (the NetworkPolicy) and, in dev, the database itself."""
    rendered = render(helm, env, ["migration.argocdSyncWaves=true"])
    job = wave(rendered.migration_job())
    prerequisites = {"ConfigMap", "Secret", "ServiceAccount", "NetworkPolicy", "StatefulSet"}
    found = [
        o
        for o in rendered.objects
        if o["kind"] in prerequisites and not o["metadata"]["name"].endswith("grafana-dashboard")
    ]
    assert {o["kind"] for o in found} >= {"ConfigMap", "ServiceAccount"}
    if env != "dev":
        assert any(o["kind"] == "NetworkPolicy" for o in found)
    for obj in found:
        assert wave(obj) < job, f"{env}: {obj['kind']}/{obj['metadata']['name']}"
    assert job < wave(rendered.deployment())


def test_the_migration_job_rides_out_a_database_failover(helm: str) -> None:
    """Kubernetes retries a failed pod 10 s, 20 s, 40 s... later (capped at 6 min)."""
    job = render(helm, "prod").migration_job()["spec"]
    delays = [min(10 * 2**attempt, 360) for attempt in range(job["backoffLimit"])]
    assert sum(delays) >= 120, f"retries span only {sum(delays)} s: {delays}"
    assert sum(delays) < job["activeDeadlineSeconds"], "the deadline would cut the retries"


def test_argocd_hook_mode_recreates_the_job_on_every_sync(helm: str) -> None:
    plain = render(helm, "prod", ["migration.argocdSyncWaves=true"]).migration_job()
    assert "argocd.argoproj.io/hook" not in plain["metadata"]["annotations"]
    rendered = render(helm, "prod", ["migration.argocdSyncWaves=true", "migration.argocdHook=true"])
    job = rendered.migration_job()
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    # Still after its prerequisites, still before the Deployment; and still failing the
    # sync visibly: a failed Sync hook fails the operation, the Job keeps its backoffLimit.
    assert wave(rendered.one("NetworkPolicy")) < wave(job) < wave(rendered.deployment())
    assert job["spec"]["backoffLimit"] >= 1
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_argocd_hook_mode_without_sync_waves_is_refused(helm: str) -> None:
    result = run_helm(helm, *template_args("prod", ["migration.argocdHook=true"]))
    assert result.returncode != 0
    assert "migration.argocdHook=true needs migration.argocdSyncWaves=true" in result.stderr


# -- NetworkPolicy peers -------------------------------------------------------------------


def egress_peers_on_port_53(policy: Obj) -> list[Obj]:
    return [
        peer
        for rule in policy["spec"]["egress"]
        if any(p.get("port") == 53 for p in rule.get("ports", []))
        for peer in rule.get("to", [])
    ]


def test_dns_egress_defaults_to_the_cluster_dns_pods_only(helm: str) -> None:
    peers = egress_peers_on_port_53(render(helm, "prod").one("NetworkPolicy"))
    assert all("ipBlock" not in peer for peer in peers)
    assert peers[0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_node_local_dns_cache_is_reachable_when_configured(helm: str) -> None:
    rendered = render(helm, "prod", ["networkPolicy.dns.cidrs[0]=169.254.20.10/32"])
    peers = egress_peers_on_port_53(rendered.one("NetworkPolicy"))
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in peers
    assert any("podSelector" in peer for peer in peers), "kube-dns stays allowed too"


def test_host_network_ingress_controllers_are_expressible(helm: str) -> None:
    default = render(helm, "prod").one("NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert all("ipBlock" not in peer for peer in default)
    rendered = render(helm, "prod", ["networkPolicy.ingressControllerCidrs[0]=10.0.0.0/16"])
    peers = rendered.one("NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in peers
    assert rendered.one("NetworkPolicy")["spec"]["ingress"][0]["ports"] == [
        {"port": "http", "protocol": "TCP"}
    ]


# -- Gateway API ---------------------------------------------------------------------------

GATEWAY_API = ROOT / "values" / "gateway-api.yaml"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_gateway_api_replaces_the_ingress_in_staging_and_prod(helm: str, env: str) -> None:
    rendered = render(helm, env, extra_values=[GATEWAY_API])
    assert not rendered.has("Ingress")
    route = rendered.one("HTTPRoute", "app")["spec"]
    host = "app.example.com" if env == "prod" else "app.staging.example.com"
    assert route["hostnames"] == [host]
    assert route["parentRefs"] == [
        {"name": "public", "namespace": "gateway", "sectionName": "https"}
    ]
    (rule,) = route["rules"]
    # The same public surface as the Ingress: the API, never /metrics or the probes.
    assert rule["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/api/"}},
        {"path": {"type": "Exact", "value": "/openapi.json"}},
    ]
    assert rule["backendRefs"] == [{"name": "app", "port": 80}]
    ingress_from = rendered.one("NetworkPolicy")["spec"]["ingress"][0]["from"]
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}
    assert gateway in ingress_from


def test_ingress_nginx_stays_the_local_default(helm: str) -> None:
    rendered = render(helm, "dev")
    assert rendered.one("Ingress")["spec"]["ingressClassName"] == "nginx"
    assert not rendered.has("HTTPRoute")


def test_notes_name_the_image_deployed_not_the_app_version(helm4: str) -> None:
    args = template_args("dev")
    args[0] = "install"
    result = run_helm(helm4, *args, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.split("NOTES:", 1)[1].strip().splitlines()[0]
    assert first_line == f"app (service:{TEST_TAG}) is deployed to namespace app."
