"""Assertions over the rendered objects of every environment (Airflow helm-tests style)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml

from tests.chart.chartlib import (
    CHART,
    ENVIRONMENTS,
    RELEASE,
    ROOT,
    TEST_DIGEST,
    TEST_TAG,
    WRITABLE_PATHS,
    Obj,
    Render,
    containers,
    matches,
    pod_specs,
    render,
    run_helm,
    template_args,
    uses_app_image,
)

pytestmark = pytest.mark.helm

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
# Volume types the "restricted" Pod Security Standard admits.
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def pod_labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def app_container(rendered: Render) -> Obj:
    container: Obj = rendered.deployment()["spec"]["template"]["spec"]["containers"][0]
    return container


def architecture_settings() -> dict[str, str]:
    """{variable: default} from the settings table of docs/architecture.md."""
    settings = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`[A-Z_]+`( / `[A-Z_]+`)?", cells[0]):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        # "unset": the chart's value is "" (the service's own default applies).
        unset = "" if cells[1] == "unset" else cells[1]
        defaults = re.findall(r"`([^`]*)`", cells[1]) or [unset] * len(names)
        settings.update(
            zip(names, defaults * len(names) if len(defaults) == 1 else defaults, strict=True)
        )
    return settings


# -- names, labels and selectors --------------------------------------------------------


def test_release_app_is_named_app_with_service_port_80_to_http(rendered: Render) -> None:
    service = rendered.one("Service", RELEASE)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    port = app_container(rendered)["ports"][0]
    assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
    assert {"name": "PORT", "value": "8000"} in app_container(rendered)["env"]


def test_selectors_select_the_server_pods_only(rendered: Render) -> None:
    deployment = rendered.deployment()
    labels = pod_labels(deployment)
    assert matches(deployment["spec"]["selector"]["matchLabels"], labels)
    service_selector = rendered.one("Service", RELEASE)["spec"]["selector"]
    assert matches(service_selector, labels)
    assert not matches(service_selector, pod_labels(rendered.migration_job()))
    for _, metadata, _ in pod_specs(rendered):
        if metadata["labels"] is not labels and matches(service_selector, metadata["labels"]):
            pytest.fail(f"the Service also selects {metadata}")
    if rendered.has("PodDisruptionBudget"):
        pdb = rendered.one("PodDisruptionBudget")
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )
    if rendered.has("HorizontalPodAutoscaler"):
        target = rendered.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": RELEASE}
    if rendered.has("ServiceMonitor"):
        monitor = rendered.one("ServiceMonitor")["spec"]
        assert matches(
            monitor["selector"]["matchLabels"], rendered.one("Service")["metadata"]["labels"]
        )
        assert monitor["endpoints"][0]["port"] == "http"
        assert monitor["endpoints"][0]["path"] == "/metrics"


def test_every_object_has_the_standard_labels(rendered: Render) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "app"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"app-{CHART_META['version']}"


# -- probes, shutdown, rollout ----------------------------------------------------------


def test_probes_are_distinct_and_liveness_never_touches_the_database(rendered: Render) -> None:
    container = app_container(rendered)
    startup, readiness = (container[f"{p}Probe"]["httpGet"] for p in ("startup", "readiness"))
    # Not HTTP: busy workers must not fail it (tests/reliability/test_liveness.py)
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    assert startup == {"path": "/livez", "port": "http"}
    assert readiness == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"] != container["readinessProbe"]
    budget = (
        container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"]
    )
    assert budget >= 30, "a slow first start must not be killed by the liveness probe"


def test_grace_period_exceeds_the_prestop_pause_plus_gunicorns_graceful_timeout(
    rendered: Render,
) -> None:
    spec = rendered.deployment()["spec"]["template"]["spec"]
    pause = app_container(rendered)["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = int(rendered.config_map()["data"]["GUNICORN_GRACEFUL_TIMEOUT"])
    assert pause > 0
    assert spec["terminationGracePeriodSeconds"] > pause + graceful


def test_grace_period_follows_a_longer_graceful_timeout(helm4: str) -> None:
    rendered = render(helm4, "prod", ["config.GUNICORN_GRACEFUL_TIMEOUT=90"])
    assert rendered.deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 95


def test_rollout_never_drops_below_the_desired_count(rendered: Render) -> None:
    strategy = rendered.deployment()["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_replicas_are_omitted_when_the_hpa_is_on(renders: dict[str, Render]) -> None:
    for env in ("staging", "prod"):
        assert renders[env].has("HorizontalPodAutoscaler")
        assert "replicas" not in renders[env].deployment()["spec"]
    assert not renders["dev"].has("HorizontalPodAutoscaler")
    assert renders["dev"].deployment()["spec"]["replicas"] == 1


def test_prod_runs_at_least_three_pods_spread_across_zones(renders: dict[str, Render]) -> None:
    prod = renders["prod"]
    assert prod.one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    spread = prod.deployment()["spec"]["template"]["spec"]["topologySpreadConstraints"]
    zone = next(c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone")
    assert zone["whenUnsatisfiable"] == "DoNotSchedule"
    for constraint in spread:
        assert matches(constraint["labelSelector"]["matchLabels"], pod_labels(prod.deployment()))


# -- security ----------------------------------------------------------------------------


def test_every_pod_is_restricted(deployed: Render) -> None:
    """Pod Security Standards "restricted" for every pod of every environment."""
    for where, _, spec in pod_specs(deployed):
        pod_sc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, where
        for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(forbidden), f"{where}: {forbidden}"
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, f"{where}: volume {volume}"
        for container in containers(spec):
            sc = container["securityContext"]
            name = f"{where}/{container['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc["capabilities"].get("add"), name
            assert not sc.get("privileged"), name
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile"))
            assert seccomp == {"type": "RuntimeDefault"}, name
            assert sc["readOnlyRootFilesystem"] is True, name


def test_app_image_pods_run_as_10001_with_writable_emptydirs_only(deployed: Render) -> None:
    deployment = deployed.deployment()
    checked = 0
    for where, _, spec in pod_specs(deployed):
        for container in containers(spec):
            if not uses_app_image(container, deployment):
                continue
            checked += 1
            assert spec["securityContext"]["runAsUser"] >= 10000, where
            assert spec["securityContext"]["runAsGroup"] >= 10000, where
            volumes = {v["name"]: v for v in spec["volumes"]}
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert set(mounts) >= {"/tmp"}, where
            for path, mount in mounts.items():
                volume = volumes[mount["name"]]
                writable = "emptyDir" in volume
                assert writable == (path in WRITABLE_PATHS), f"{where}: {path}"
    assert checked == 4, "app, wait-for-schema, migrate and the helm test pod"


def test_the_service_account_token_is_never_mounted(deployed: Render) -> None:
    account = deployed.one("ServiceAccount", RELEASE)
    assert account["automountServiceAccountToken"] is False


def test_image_is_pinned_and_never_latest(rendered: Render, env: str) -> None:
    image = app_container(rendered)["image"]
    assert not image.endswith(":latest")
    if env == "dev":
        assert image == f"service:{TEST_TAG}"
    else:
        assert image == f"service@{TEST_DIGEST}"
        # A digest is immutable: a cached copy is the tested image, and a registry outage
        # must not stop pods from starting (values/staging.yaml says why).
        assert app_container(rendered)["imagePullPolicy"] == "IfNotPresent"


# What the bare chart (production defaults) needs to render: a database and an issuer.
BARE = ["existingSecret=db", "auth.issuer=https://login.example.com", "auth.audience=items-api"]


def test_digest_wins_over_the_tag(helm4: str) -> None:
    rendered = render(helm4, None, [*BARE, "image.tag=1.2.3", f"image.digest={TEST_DIGEST}"])
    assert app_container(rendered)["image"] == f"service:1.2.3@{TEST_DIGEST}"
    rendered = render(helm4, None, [*BARE, "image.tag=1.2.3"])
    assert app_container(rendered)["image"] == "service:1.2.3"


# -- configuration and secrets ------------------------------------------------------------


def test_config_keys_are_the_documented_variable_names(rendered: Render) -> None:
    documented = architecture_settings()
    assert documented, "the settings table in docs/architecture.md was not found"
    data = rendered.config_map()["data"]
    unknown = set(data) - set(documented)
    assert not unknown, f"ConfigMap keys not in docs/architecture.md: {unknown}"
    assert all(isinstance(v, str) for v in data.values())


def test_chart_defaults_match_the_documented_defaults() -> None:
    documented = architecture_settings()
    for key, value in DEFAULTS["config"].items():
        expected = documented[key]
        assert str(value).lower() == expected.lower(), f"config.{key}: {value} vs {expected}"


def test_no_env_name_is_set_twice(rendered: Render, helm4: str, env: str) -> None:
    with_extras = render(helm4, env, ["extraEnv[0].name=FEATURE_X", "extraEnv[0].value=enabled"])
    for candidate in (rendered, with_extras):
        for where, _, spec in pod_specs(candidate):
            for container in containers(spec):
                names = [e["name"] for e in container.get("env", [])]
                config_keys = []
                for source in container.get("envFrom", []):
                    ref = source["configMapRef"]["name"]
                    config_keys += list(candidate.one("ConfigMap", ref)["data"])
                duplicates = [n for n, c in Counter(names + config_keys).items() if c > 1]
                assert not duplicates, f"{where}/{container['name']}: {duplicates}"
    assert {"name": "FEATURE_X", "value": "enabled"} in app_container(with_extras)["env"]


def test_database_credentials_are_mounted_files_never_env_vars(deployed: Render) -> None:
    """The URL (DATABASE_URL_FILE) or a basic-auth Secret's username and password
    (DATABASE_USER_FILE, DATABASE_PASSWORD_FILE): each a read-only file, 0440."""
    deployment = deployed.deployment()
    checked = 0
    for where, _, spec in pod_specs(deployed):
        for container in containers(spec):
            if not uses_app_image(container, deployment) or container["name"] == "readyz":
                continue
            env = {e["name"]: e for e in container["env"]}
            assert not {"DATABASE_URL", "DATABASE_USER", "DATABASE_PASSWORD"} & set(env), where
            files = [n for n in ("DATABASE_URL_FILE", "DATABASE_USER_FILE",
                                 "DATABASE_PASSWORD_FILE") if n in env]  # fmt: skip
            assert files in (
                ["DATABASE_URL_FILE"],
                ["DATABASE_USER_FILE", "DATABASE_PASSWORD_FILE"],
            )
            for name in files:
                path = env[name]["value"]
                mount = next(
                    m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")
                )
                assert mount["readOnly"] is True
                volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
                paths = [item["path"] for item in volume["secret"]["items"]]
                assert path.removeprefix(mount["mountPath"] + "/") in paths, f"{where}: {name}"
                assert volume["secret"]["defaultMode"] == 0o440
                checked += 1
    assert checked >= 3, "wait-for-schema, app and migrate each read a credential file"


def test_existing_secret_means_no_secret_is_rendered(renders: dict[str, Render]) -> None:
    for env in ("staging", "prod"):
        rendered = renders[env]
        assert not rendered.has("Secret")
        volumes = rendered.deployment()["spec"]["template"]["spec"]["volumes"]
        secret = next(v["secret"] for v in volumes if "secret" in v)
        assert secret["secretName"] == "app-database"
        assert secret["items"][0]["key"] == "DATABASE_URL"


def test_checksum_annotations_roll_pods_on_config_change(
    helm4: str, renders: dict[str, Render]
) -> None:
    def annotations(rendered: Render) -> dict[str, str]:
        result: dict[str, str] = rendered.deployment()["spec"]["template"]["metadata"][
            "annotations"
        ]
        return result

    base = annotations(renders["dev"])
    assert base == annotations(render(helm4, "dev"))
    changed_config = annotations(render(helm4, "dev", ["config.LOG_LEVEL=WARNING"]))
    assert changed_config["checksum/config"] != base["checksum/config"]
    assert changed_config["checksum/secret"] == base["checksum/secret"]
    changed_secret = annotations(render(helm4, "dev", ["devDatabase.auth.password=another"]))
    assert changed_secret["checksum/secret"] != base["checksum/secret"]
    assert changed_secret["checksum/config"] == base["checksum/config"]


def test_an_app_upgrade_leaves_the_dev_database_running(helm4: str) -> None:
    """A new app image must not change the dev database's pod template: any change there
    restarts PostgreSQL, and every request in flight during the upgrade fails with 503
    (found by the live zero-downtime test on the cluster built from source)."""

    def database(tag: str) -> Obj:
        rendered = render(helm4, "dev", [f"image.tag={tag}"])
        template: Obj = rendered.one("StatefulSet", "app-postgresql")["spec"]["template"]
        return template

    before, after = database("1.4.2"), database("1.5.0")
    assert before == after
    assert (
        before["metadata"]["labels"]["app.kubernetes.io/version"]
        == (DEFAULTS["devDatabase"]["image"]["tag"])
    )


def test_dev_has_its_own_database_and_prod_does_not(renders: dict[str, Render]) -> None:
    dev = renders["dev"]
    assert dev.config_map()["data"]["APP_ENV"] == "dev"
    assert dev.config_map()["data"]["LOG_LEVEL"] == "DEBUG"
    database = dev.one("StatefulSet", "app-postgresql")
    container = database["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("postgres:")
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert database["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    secret = dev.one("Secret", "app-postgresql")["stringData"]
    assert secret["DATABASE_URL"] == (
        f"postgresql://app:{secret['POSTGRES_PASSWORD']}@app-postgresql:5432/app"
    )
    for env in ("staging", "prod"):
        assert not renders[env].has("StatefulSet")
        assert renders[env].config_map()["data"]["APP_ENV"] == env


def test_resources_are_set_on_every_container(deployed: Render) -> None:
    for where, _, spec in pod_specs(deployed):
        for container in containers(spec):
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], where
            assert resources["limits"]["memory"], where


# -- the migration Job --------------------------------------------------------------------


def test_migration_job_runs_migrate_once_without_hooks(rendered: Render) -> None:
    job = rendered.migration_job()
    assert re.fullmatch(r"app-migrate-[0-9a-f]{10}", job["metadata"]["name"])
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert spec["backoffLimit"] >= 1
    assert spec["activeDeadlineSeconds"] > 0
    assert "ttlSecondsAfterFinished" not in spec, "a TTL makes Argo CD and Helm re-run it"
    for obj in rendered.objects:
        annotations = obj["metadata"].get("annotations", {})
        if obj["kind"] != "Pod":
            assert not any(a.startswith("helm.sh/hook") for a in annotations), obj["kind"]


def test_contract_steps_run_only_when_named(helm4: str, rendered: Render) -> None:
    """`migration.contractThrough` (docs/extending.md): `migrate --contract <revision>`,
    in a Job of its own name; unset, the Job and its name are what they were."""
    named = render(helm4, "prod", ["migration.contractThrough=0006"]).migration_job()
    assert named["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate", "--contract", "0006"
    ]  # fmt: skip
    plain = render(helm4, "prod").migration_job()
    assert named["metadata"]["name"] != plain["metadata"]["name"]
    result = run_helm(helm4, *template_args("prod", ["migration.contractThrough=0006; rm"]))
    assert result.returncode != 0 and "contractThrough" in result.stderr


def test_migration_job_needs_nothing_the_release_creates_later(rendered: Render, env: str) -> None:
    """No hooks: every ConfigMap/Secret the Job reads is in the same apply, or external."""
    job_spec = rendered.migration_job()["spec"]["template"]["spec"]
    config_maps = {o["metadata"]["name"] for o in rendered.of_kind("ConfigMap")}
    secrets = {o["metadata"]["name"] for o in rendered.of_kind("Secret")}
    for source in job_spec["containers"][0]["envFrom"]:
        assert source["configMapRef"]["name"] in config_maps
    secret_name = next(v["secret"]["secretName"] for v in job_spec["volumes"] if "secret" in v)
    if env == "dev":
        assert secret_name in secrets
    else:
        # external: the migration role's own (tests/chart/test_chart_reliability.py)
        assert secret_name == "app-database-migrator" and not secrets


def test_app_pods_wait_for_the_schema_first(rendered: Render) -> None:
    spec = rendered.deployment()["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["name"] == "wait-for-schema"
    assert init["args"][:2] == ["wait-for-schema", "--timeout"]
    assert int(init["args"][2]) > 0
    assert init["image"] == spec["containers"][0]["image"]
    assert init["envFrom"] == spec["containers"][0]["envFrom"]


def test_job_name_changes_with_the_image_and_only_then(
    helm4: str, renders: dict[str, Render]
) -> None:
    name = renders["prod"].migration_job()["metadata"]["name"]
    assert render(helm4, "prod").migration_job()["metadata"]["name"] == name
    other = "sha256:" + "7f" * 32
    new_image = render(helm4, "prod", [f"image.digest={other}"])
    assert new_image.migration_job()["metadata"]["name"] != name
    more_replicas = render(helm4, "prod", ["autoscaling.maxReplicas=30"])
    assert more_replicas.migration_job()["metadata"]["name"] == name


def test_argocd_sync_waves_order_config_then_job_then_deployment(helm4: str) -> None:
    rendered = render(helm4, "prod", ["migration.argocdSyncWaves=true"])

    def wave(obj: Obj) -> int:
        return int(obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))

    assert (
        wave(rendered.config_map()) < wave(rendered.migration_job()) < wave(rendered.deployment())
    )
    assert wave(rendered.one("ServiceAccount")) < wave(rendered.migration_job())


# -- traffic -----------------------------------------------------------------------------


def test_tls_hosts_match_the_ingress_hosts(rendered: Render, env: str) -> None:
    ingress = rendered.one("Ingress", RELEASE)["spec"]
    hosts = {rule["host"] for rule in ingress["rules"]}
    tls_hosts = {host for tls in ingress["tls"] for host in tls["hosts"]}
    assert hosts == tls_hosts
    assert ingress["ingressClassName"] == "nginx"
    for rule in ingress["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": RELEASE, "port": {"name": "http"}}
    if env == "dev":
        assert ingress["tls"] == [{"secretName": "app-local-tls", "hosts": ["app.localdev.me"]}]
    else:
        annotations = rendered.one("Ingress")["metadata"]["annotations"]
        assert annotations["cert-manager.io/cluster-issuer"].startswith("letsencrypt")


def test_http_route_points_at_the_service(helm4: str) -> None:
    rendered = render(
        helm4, "prod",
        ["httpRoute.enabled=true", "httpRoute.parentRefs[0].name=public",
         "httpRoute.parentRefs[0].namespace=gateway", "httpRoute.hostnames[0]=app.example.com"],
    )  # fmt: skip
    route = rendered.one("HTTPRoute", RELEASE)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway"}]
    assert route["spec"]["hostnames"] == ["app.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": RELEASE, "port": 80}]
    # Only the API and its document are public (tests/chart/test_chart_auth.py).
    assert rule["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/api"}},
        {"path": {"type": "Exact", "value": "/openapi.json"}},
    ]


def test_network_policy_selects_every_app_image_pod(renders: dict[str, Render]) -> None:
    for env in ("staging", "prod"):
        rendered = renders[env]
        policy = rendered.one("NetworkPolicy", RELEASE)["spec"]
        for where, metadata, _ in pod_specs(rendered):
            assert matches(policy["podSelector"]["matchLabels"], metadata["labels"]), where
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
        sources = policy["ingress"][0]["from"]
        namespaces = {
            s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for s in sources
            if "namespaceSelector" in s
        }
        assert namespaces == {"ingress-nginx", "monitoring"}
        test_pod = rendered.one("Pod", "app-test-readyz")
        pod_source = next(s["podSelector"] for s in sources if "podSelector" in s)
        assert matches(pod_source["matchLabels"], test_pod["metadata"]["labels"])
        assert not matches(pod_source["matchLabels"], pod_labels(rendered.deployment()))
        assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
        egress_ports = Counter(str(p["port"]) for rule in policy["egress"] for p in rule["ports"])
        assert egress_ports == {"53": 2, "5432": 1, "443": 1, "4318": 1, "http": 1}, (
            "DNS, the database, the identity provider, the trace collector, the server"
        )
        server_rule = next(r for r in policy["egress"] if r["ports"][0]["port"] == "http")
        assert matches(
            server_rule["to"][0]["podSelector"]["matchLabels"], pod_labels(rendered.deployment())
        )


def test_network_policy_lets_release_pods_reach_the_dev_database(helm4: str) -> None:
    rendered = render(helm4, "dev", ["networkPolicy.enabled=true"])
    policy = rendered.one("NetworkPolicy")["spec"]
    database = rendered.one("StatefulSet", "app-postgresql")
    assert matches(policy["podSelector"]["matchLabels"], pod_labels(database))
    egress = next(r for r in policy["egress"] if r["ports"] == [{"port": 5432, "protocol": "TCP"}])
    assert matches(egress["to"][0]["podSelector"]["matchLabels"], pod_labels(database))
    assert not matches(
        egress["to"][0]["podSelector"]["matchLabels"], pod_labels(rendered.deployment())
    )


def test_grafana_dashboard_is_labelled_for_the_sidecar(renders: dict[str, Render]) -> None:
    # Its queries are run on a real Prometheus scraping the service: tests/monitoring.
    dashboard_map = renders["prod"].one("ConfigMap", "app-grafana-dashboard")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_pdb_allows_drains_with_a_single_replica(renders: dict[str, Render]) -> None:
    pdb = renders["prod"].one("PodDisruptionBudget")["spec"]
    assert "minAvailable" not in pdb
    assert pdb["maxUnavailable"] == 1


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_values_files_only_hold_known_keys(env: str) -> None:
    """A key that is not in values.yaml would be a silent no-op (the schema also rejects it)."""

    def paths(tree: object, prefix: str = "") -> set[str]:
        if isinstance(tree, dict) and tree and prefix.count(".") < 3:
            return {p for k, v in tree.items() for p in paths(v, f"{prefix}{k}.")}
        return {prefix.rstrip(".")}

    known = paths(DEFAULTS)
    values = yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text())
    for path in paths(values):
        assert any(
            path == k or path.startswith(k + ".") or k.startswith(path + ".") for k in known
        ), path
