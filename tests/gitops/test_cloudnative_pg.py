"""CloudNativePG (docs/cloudnativepg.md): the manifests of gitops/database/, rendered with
`kubectl kustomize` as Argo CD and Flux render them, each object checked against its own
CRD's schema (tests/gitops/schemas/, from the pinned releases) with unknown fields refused;
what they declare; that values/cloudnative-pg.yaml names what they make; and the operator
installed by the Argo CD and Flux examples at the versions the schemas came from."""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.chartlib import INSTALL_TOOLS, NAMESPACE, ROOT
from tests.crd_schemas import load_strict
from tools.prereq import PROJECT_BIN, require_tool

Obj = dict[str, Any]

GITOPS = ROOT / "gitops"
DATABASE = GITOPS / "database"
SCHEMAS = Path(__file__).parent / "schemas"
OVERLAY = yaml.safe_load((ROOT / "values" / "cloudnative-pg.yaml").read_text())
DOC = ROOT / "docs" / "cloudnativepg.md"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ENVS = ("staging", "prod")
BARMAN = "barman-cloud.cloudnative-pg.io"
# The release that stopped -rw from routing to a failed primary that came back.
FIXED_OPERATOR = (1, 28, 3)


def kubectl() -> str:
    return require_tool("kubectl", provided_by=INSTALL_TOOLS)


@functools.cache
def kustomize(path: Path) -> tuple[Obj, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kubectl kustomize {path}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(objects: tuple[Obj, ...], kind: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- the schemas ---------------------------------------------------------------------------


@functools.cache
def schemas() -> dict[tuple[str, str], tuple[Obj, Obj]]:
    """{(apiVersion, kind): (strict schema, where it came from)} of every kept CRD."""
    kept = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        source = json.loads(path.read_text())["x-source"]
        kept[(source["apiVersion"], source["kind"])] = (load_strict(path), source)
    return kept


def schema_errors(obj: Obj) -> list[str]:
    key = (obj["apiVersion"], obj["kind"])
    if key not in schemas():
        return [f"{key}: no CRD schema kept in tests/gitops/schemas/"]
    validator = jsonschema.Draft7Validator(schemas()[key][0])
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    return [
        f"{where}: {error.message} at {'.'.join(map(str, error.absolute_path))}"
        for error in validator.iter_errors(obj)
    ]


@pytest.mark.parametrize("path", ["staging", "prod", "restore"])
def test_every_manifest_is_valid_against_its_own_crd(path: str) -> None:
    objects = kustomize(DATABASE / path)
    assert objects
    errors = [error for obj in objects for error in schema_errors(obj)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("kind", "change", "named"),
    [
        ("Cluster", ("spec", "postgresql", "synchronous", "failoverQuorom"), "failoverQuorom"),
        ("Cluster", ("spec", "postgresql", "synchronous", "dataDurability"), "best-effort"),
        ("Pooler", ("spec", "pgbouncer", "poolMode"), "statement"),
        ("Pooler", ("spec", "template", "spec", "containers", 0, "resourcez"), "resourcez"),
        ("ObjectStore", ("spec", "configuration", "wal", "compression"), "brotli"),
        ("ScheduledBackup", ("spec", "method"), "barmanObjectStorage"),
        ("PodMonitor", ("spec", "podMetricsEndpoints", 0, "ports"), "ports"),
    ],
)
def test_the_check_catches_a_misspelt_field_or_a_wrong_value(
    kind: str, change: tuple[Any, ...], named: str
) -> None:
    broken = copy.deepcopy(next(o for o in kustomize(DATABASE / "prod") if o["kind"] == kind))
    node = broken
    for key in change[:-1]:
        node = node[key]
    node[change[-1]] = named if change[-1] != named else {}
    errors = schema_errors(broken)
    assert any(named in error for error in errors), errors


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in tag.lstrip("v").split("."))


def test_the_schemas_come_from_pinned_releases() -> None:
    sources = {key: source for key, (_, source) in schemas().items()}
    assert set(sources) == {
        ("postgresql.cnpg.io/v1", "Cluster"), ("postgresql.cnpg.io/v1", "Pooler"),
        ("postgresql.cnpg.io/v1", "ScheduledBackup"), ("barmancloud.cnpg.io/v1", "ObjectStore"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    }  # fmt: skip
    for source in sources.values():
        assert re.fullmatch(r"v\d+\.\d+\.\d+", source["tag"]), source
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source
        assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]), source
    operator = {s["tag"] for s in sources.values() if s["repository"].endswith("/cloudnative-pg")}
    (tag,) = operator
    assert version(tag) >= FIXED_OPERATOR, f"{tag}: CloudNativePG before 1.28.3"


def charts_of(source_repository: str) -> dict[str, str]:
    """{chart: version} the kept schemas say installs them."""
    return {
        s["chart"]: s["chartVersion"]
        for _, s in schemas().values()
        if s["repository"].startswith(source_repository) and "chart" in s
    }


# -- the operator, installed by Argo CD and Flux -------------------------------------------


def app_clusters() -> list[Obj]:
    (appset,) = load_all(GITOPS / "argocd" / "applicationset.yaml")
    elements: list[Obj] = appset["spec"]["generators"][0]["list"]["elements"]
    return [{"env": e["env"], "cluster": e["cluster"]} for e in elements]


def test_argocd_installs_the_operator_and_plugin_at_the_pinned_versions() -> None:
    (appset,) = load_all(GITOPS / "argocd" / "cloudnative-pg.yaml")
    assert appset["spec"]["generators"][0]["list"]["elements"] == app_clusters()
    spec = appset["spec"]["template"]["spec"]
    installed = {s["chart"]: s["targetRevision"] for s in spec["sources"]}
    assert installed == charts_of("cloudnative-pg/") == {
        "cloudnative-pg": "0.29.0", "plugin-barman-cloud": "0.7.0"
    }  # fmt: skip
    assert {s["repoURL"] for s in spec["sources"]} == {"https://cloudnative-pg.github.io/charts"}
    # The plugin must run in the operator's namespace.
    assert spec["destination"]["namespace"] == "cnpg-system"
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"], "CRDs too large"


def test_flux_installs_the_same_charts_from_the_same_repository() -> None:
    objects = kustomize(GITOPS / "flux" / "cloudnative-pg")
    repository = one(objects, "HelmRepository")
    releases = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HelmRelease"}
    assert repository["spec"]["url"] == "https://cloudnative-pg.github.io/charts"
    installed = {r["spec"]["chart"]["spec"]["chart"]: r["spec"]["chart"]["spec"]["version"]
                 for r in releases.values()}  # fmt: skip
    assert installed == charts_of("cloudnative-pg/")
    for release in releases.values():
        assert release["metadata"]["namespace"] == "cnpg-system"
        source = release["spec"]["chart"]["spec"]["sourceRef"]
        assert source == {"kind": "HelmRepository", "name": repository["metadata"]["name"]}
        assert release["spec"]["upgrade"]["remediation"]["strategy"] == "rollback"
    assert releases["plugin-barman-cloud"]["spec"]["dependsOn"] == [{"name": "cnpg"}]
    assert one(objects, "Namespace")["metadata"]["name"] == "cnpg-system"


@pytest.mark.parametrize("env", ENVS)
def test_flux_applies_the_operator_then_the_ready_database_then_the_app(env: str) -> None:
    syncs = {k["metadata"]["name"]: k["spec"] for k in load_all(
        GITOPS / "flux" / "clusters" / env / "sync.yaml")}  # fmt: skip
    assert list(syncs) == ["cloudnative-pg", "app-database", "app"]
    assert syncs["cloudnative-pg"]["path"] == "./gitops/flux/cloudnative-pg"
    assert syncs["app-database"]["path"] == f"./gitops/database/{env}"
    assert syncs["app"]["path"] == f"./gitops/flux/{env}"
    assert syncs["app-database"]["dependsOn"] == [{"name": "cloudnative-pg"}]
    assert syncs["app"]["dependsOn"] == [{"name": "app-database"}]
    # Each waits until what it applied is ready: CRDs installed, the Cluster Ready.
    assert syncs["cloudnative-pg"]["wait"] and syncs["app-database"]["wait"]
    for spec in syncs.values():
        assert (ROOT / spec["path"]).is_dir(), spec["path"]
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}


def test_argocd_applies_each_environments_database_in_the_apps_namespace() -> None:
    (appset,) = load_all(GITOPS / "argocd" / "database.yaml")
    assert appset["spec"]["generators"][0]["list"]["elements"] == app_clusters()
    spec = appset["spec"]["template"]["spec"]
    assert spec["source"]["path"] == "gitops/database/{{.env}}"
    for element in app_clusters():
        path = DATABASE / element["env"]
        assert {o["metadata"]["namespace"] for o in kustomize(path)} == {NAMESPACE}
    assert spec["destination"]["namespace"] == NAMESPACE
    assert "SkipDryRunOnMissingResource=true" in spec["syncPolicy"]["syncOptions"]


# -- what the manifests declare ------------------------------------------------------------


@pytest.fixture(scope="module")
def prod() -> dict[str, Obj]:
    objects = kustomize(DATABASE / "prod")
    by_name = {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}
    assert set(by_name) == {
        "Cluster/app-db", "Pooler/app-db-pooler-rw", "ObjectStore/app-db-backup",
        "ScheduledBackup/app-db-daily", "PodMonitor/app-db", "PodMonitor/app-db-pooler-rw",
    }  # fmt: skip
    return by_name


def test_three_instances_with_quorum_synchronous_replication(prod: dict[str, Obj]) -> None:
    spec = prod["Cluster/app-db"]["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"] == {
        "method": "any", "number": 1, "dataDurability": "required", "failoverQuorum": True,
    }  # fmt: skip
    # (so no standbyNamesPre/Post, which the webhook refuses with `preferred`); the
    # documented choice, and why the request deadline matters with it:
    doc = DOC.read_text().split("**`dataDurability: required`**, the choice", 1)[1]
    assert "request deadline" in " ".join(doc.split("\n\n", 1)[0].split())
    assert re.fullmatch(r"ghcr\.io/cloudnative-pg/postgresql:\d+\.\d+-\w+-\w+", spec["imageName"])


def test_roles_the_owner_migrates_and_the_serving_role_only_reads_and_writes(
    prod: dict[str, Obj],
) -> None:
    spec = prod["Cluster/app-db"]["spec"]
    assert spec["bootstrap"] == {
        "initdb": {"database": "app", "owner": "app_migrator", "dataChecksums": True}
    }
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    assert set(roles) == {"app_rw", "app_service"}
    assert roles["app_rw"]["login"] is False and "passwordSecret" not in roles["app_rw"]
    service = roles["app_service"]
    assert service["login"] is True and service["inRoles"] == ["app_rw"]
    assert service["passwordSecret"] == {"name": "app-db-service"}
    for role in roles.values():
        assert not {"superuser", "createdb", "createrole", "replication", "bypassrls"} & {
            key for key, value in role.items() if value is True
        }, role["name"]
    assert not spec.get("enableSuperuserAccess")


def test_backups_through_the_barman_cloud_plugin_not_the_in_tree_store(
    prod: dict[str, Obj],
) -> None:
    spec = prod["Cluster/app-db"]["spec"]
    assert "backup" not in spec, "the in-tree barmanObjectStore is deprecated (gone in 1.31)"
    (plugin,) = spec["plugins"]
    assert plugin == {"name": BARMAN, "isWALArchiver": True,
                      "parameters": {"barmanObjectName": "app-db-backup"}}  # fmt: skip
    scheduled = prod["ScheduledBackup/app-db-daily"]["spec"]
    assert scheduled["cluster"] == {"name": "app-db"}
    assert scheduled["method"] == "plugin"
    assert scheduled["pluginConfiguration"] == {"name": BARMAN}
    assert len(scheduled["schedule"].split()) == 6, "robfig/cron: seconds first"
    store = prod["ObjectStore/app-db-backup"]["spec"]
    assert re.fullmatch(r"[1-9]\d*[dwm]", store["retentionPolicy"])
    assert "serverName" not in store["configuration"], "the plugin's parameter, never here"


def test_each_environment_backs_up_to_its_own_path() -> None:
    paths = {env: one(kustomize(DATABASE / env), "ObjectStore")["spec"]["configuration"]
             ["destinationPath"] for env in ENVS}  # fmt: skip
    base = one(kustomize(DATABASE / "base"), "ObjectStore")["spec"]["configuration"]
    assert len(set(paths.values())) == len(ENVS), paths
    assert base["destinationPath"] not in paths.values()
    assert all(path.startswith("s3://") for path in paths.values())


def test_the_pooler_is_rw_transaction_pooling_with_verify_full_through_it(
    prod: dict[str, Obj],
) -> None:
    pooler = prod["Pooler/app-db-pooler-rw"]
    spec = pooler["spec"]
    assert spec["cluster"] == {"name": "app-db"} and spec["type"] == "rw"
    assert spec["pgbouncer"]["poolMode"] == "transaction"
    assert spec["pgbouncer"]["parameters"]["client_tls_sslmode"] == "require"
    assert pooler["metadata"]["name"] != "app-db", "the webhook refuses a Pooler named as a Cluster"
    # The Pooler presents the Cluster's certificate: its Service's names must be in it.
    name, namespace = pooler["metadata"]["name"], pooler["metadata"]["namespace"]
    certificates = prod["Cluster/app-db"]["spec"]["certificates"]
    assert certificates["serverAltDNSNames"] == [
        name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.cluster.local",
    ]  # fmt: skip
    assert "serverTLSSecret" not in certificates, "alt names need operator-made certificates"


def test_the_pooler_and_the_budget_fit_postgresql(prod: dict[str, Obj]) -> None:
    pooler = prod["Pooler/app-db-pooler-rw"]["spec"]
    parameters = pooler["pgbouncer"]["parameters"]
    max_connections = int(prod["Cluster/app-db"]["spec"]["postgresql"]["parameters"]
                          ["max_connections"])  # fmt: skip
    # PgBouncer's server connections, the migration Job, and room for CloudNativePG's own
    # (superuser_reserved_connections 3, two standbys, the exporter, the pooler's auth).
    needed = pooler["instances"] * int(parameters["default_pool_size"]) + 1 + 10
    assert needed <= max_connections, (needed, max_connections)
    # `options` (the service's `-c timezone=UTC`) never gets through PgBouncer.
    assert prod["Cluster/app-db"]["spec"]["postgresql"]["parameters"]["timezone"] == "UTC"
    # The chart checks the pods' peak against one PgBouncer's clients.
    assert OVERLAY["database"]["maxConnections"] == int(parameters["max_client_conn"])


def test_shared_buffers_are_a_quarter_of_the_instances_memory(prod: dict[str, Obj]) -> None:
    spec = prod["Cluster/app-db"]["spec"]
    memory = spec["resources"]["limits"]["memory"]
    assert spec["resources"]["requests"]["memory"] == memory  # all of it reserved, none burst
    units = {"Mi": 1, "Gi": 1024}
    found = re.fullmatch(r"(\d+)(Mi|Gi)", memory)
    assert found, memory
    memory_mb = int(found[1]) * units[found[2]]
    buffers = spec["postgresql"]["parameters"]["shared_buffers"]
    assert buffers == f"{memory_mb // 4}MB", (buffers, memory)


def test_a_pod_monitor_for_the_instances_and_one_for_the_pooler(prod: dict[str, Obj]) -> None:
    instances = prod["PodMonitor/app-db"]["spec"]
    pooler = prod["PodMonitor/app-db-pooler-rw"]["spec"]
    assert instances["selector"] == {"matchLabels": {"cnpg.io/cluster": "app-db",
                                                     "cnpg.io/podRole": "instance"}}  # fmt: skip
    assert pooler["selector"] == {"matchLabels": {"cnpg.io/poolerName": "app-db-pooler-rw",
                                                  "cnpg.io/podRole": "pooler"}}  # fmt: skip
    for spec in (instances, pooler):
        assert spec["podMetricsEndpoints"] == [{"port": "metrics"}]
    monitoring = prod["Cluster/app-db"]["spec"].get("monitoring", {})
    assert "enablePodMonitor" not in monitoring, "deprecated: the PodMonitors are ours"


def test_the_data_outlives_its_manifest(prod: dict[str, Obj]) -> None:
    annotations = prod["Cluster/app-db"]["metadata"]["annotations"]
    assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert set(annotations["argocd.argoproj.io/sync-options"].split(",")) == {
        "Prune=false", "Delete=false"
    }  # fmt: skip


def test_the_charts_overlay_names_what_the_manifests_make(prod: dict[str, Obj]) -> None:
    cluster = prod["Cluster/app-db"]
    name = cluster["metadata"]["name"]
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    database, migration, config = OVERLAY["database"], OVERLAY["migration"], OVERLAY["config"]
    assert cluster["metadata"]["namespace"] == NAMESPACE, "the chart mounts the Cluster's Secrets"
    # The pods: the serving role's Secret, through the Pooler's Service, verify-full.
    assert database["host"] == prod["Pooler/app-db-pooler-rw"]["metadata"]["name"]
    assert database["credentialsSecret"] == roles["app_service"]["passwordSecret"]["name"]
    assert database["name"] == cluster["spec"]["bootstrap"]["initdb"]["database"]
    assert database["caSecret"] == f"{name}-ca" and config["DATABASE_SSLMODE"] == "verify-full"
    assert not OVERLAY["existingSecret"], "never the owner's credentials for the pods"
    # The Job: the owner's generated Secret, its uri (the -rw Service), never the Pooler.
    assert (migration["existingSecret"], migration["existingSecretKey"]) == (f"{name}-app", "uri")
    # Grants to the serving role's group; prepared statements off for transaction pooling.
    assert config["MIGRATION_GRANT_ROLE"] in roles["app_service"]["inRoles"]
    assert config["DB_PREPARED_STATEMENTS"] is False
    assert OVERLAY["networkPolicy"]["database"]["podLabels"] == {"cnpg.io/cluster": name}


# -- the restore ---------------------------------------------------------------------------

# What a restore changes in production's Cluster spec; everything else is the same.
RESTORE_CHANGES = {"bootstrap", "description", "certificates", "plugins", "externalClusters",
                   "topologySpreadConstraints"}  # fmt: skip


def test_the_restore_is_productions_cluster_bootstrapped_to_a_point_in_time(
    prod: dict[str, Obj],
) -> None:
    (restore,) = kustomize(DATABASE / "restore")
    source = prod["Cluster/app-db"]
    assert (restore["kind"], restore["metadata"]["name"]) == ("Cluster", "app-db-restore")
    assert restore["metadata"]["namespace"] == source["metadata"]["namespace"]
    same = {k: v for k, v in restore["spec"].items() if k not in RESTORE_CHANGES}
    assert same == {k: v for k, v in source["spec"].items() if k not in RESTORE_CHANGES}

    recovery = restore["spec"]["bootstrap"]["recovery"]
    assert set(restore["spec"]["bootstrap"]) == {"recovery"}
    initdb = source["spec"]["bootstrap"]["initdb"]
    assert (recovery["database"], recovery["owner"]) == (initdb["database"], initdb["owner"])
    target = datetime.datetime.fromisoformat(recovery["recoveryTarget"]["targetTime"])
    assert target.tzinfo is not None, "a point in time names its zone"
    (origin,) = restore["spec"]["externalClusters"]
    assert origin["name"] == recovery["source"]
    assert origin["plugin"] == {"name": BARMAN, "parameters": {
        "barmanObjectName": prod["ObjectStore/app-db-backup"]["metadata"]["name"],
        "serverName": source["metadata"]["name"]}}  # fmt: skip
    (archive,) = restore["spec"]["plugins"]
    assert archive["isWALArchiver"] is True
    assert archive["parameters"]["serverName"] == "app-db-restore", "never app-db's archive"
    spread = restore["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    assert spread["cnpg.io/cluster"] == "app-db-restore"


def test_the_runbook_names_the_restore_steps() -> None:
    section = RUNBOOKS.read_text().split("\n## Restore\n", 1)[1].split("\n## ", 1)[0]
    for step in ("kubectl cnpg status app-db", "targetTime",
                 "kubectl kustomize gitops/database/restore",
                 "kubectl apply -k gitops/database/restore",
                 "kubectl -n $NS wait cluster/app-db-restore --for=condition=Ready",
                 "SELECT version_num FROM alembic_version", "pg_dump", "pg_restore",
                 "kubectl -n $NS delete cluster app-db-restore"):  # fmt: skip
        assert step in section, step
    kustomization = (DATABASE / "restore" / "kustomization.yaml").read_text()
    assert "kubectl apply -k gitops/database/restore" in kustomization


# -- the Secrets from outside git ----------------------------------------------------------


def documented_secrets() -> list[Obj]:
    """The doc's `kubectl create secret` pipelines, run up to `kubectl apply`."""
    section = DOC.read_text().split("\n## Secrets\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "docs/cloudnativepg.md: two ```sh blocks under Secrets"
    secrets = []
    for block in blocks:
        pipeline, applied = block.strip().rsplit("\n", 1)
        assert applied.strip() == "| kubectl apply --filename=-", applied
        pipeline = pipeline.rstrip().removesuffix("\\")
        env = {"PATH": f"{Path(kubectl()).parent}:{PROJECT_BIN}:/usr/bin:/bin"}
        command = ["bash", "-euo", "pipefail", "-c", pipeline]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        secrets.append(yaml.safe_load(result.stdout))
    return secrets


def test_the_documented_secrets_are_the_ones_the_manifests_reference(
    prod: dict[str, Obj],
) -> None:
    service, s3 = documented_secrets()
    for secret in (service, s3):
        kubernetes_validate.validate(secret, "1.34.0", strict=True)
        assert secret["metadata"]["namespace"] == NAMESPACE
    roles = {r["name"]: r for r in prod["Cluster/app-db"]["spec"]["managed"]["roles"]}
    assert service["metadata"]["name"] == roles["app_service"]["passwordSecret"]["name"]
    assert service["type"] == "kubernetes.io/basic-auth"
    assert service["metadata"]["labels"] == {"cnpg.io/reload": "true"}
    assert set(service["data"]) == {"username", "password"}
    assert base64.b64decode(service["data"]["username"]).decode() == "app_service"
    assert len(base64.b64decode(service["data"]["password"])) >= 32
    credentials = prod["ObjectStore/app-db-backup"]["spec"]["configuration"]["s3Credentials"]
    assert {ref["name"] for ref in credentials.values()} == {s3["metadata"]["name"]}
    assert {ref["key"] for ref in credentials.values()} == set(s3["data"])


def test_the_schema_tool_keeps_the_served_version_without_descriptions(tmp_path: Path) -> None:
    """tools/crd_schema.py, which wrote tests/gitops/schemas/ from the upstream CRDs."""
    from tools.crd_schema import kept_schema

    field = {"type": "object", "description": "docs", "properties": {
        "description": {"type": "string", "description": "a field named description"}}}  # fmt: skip
    crd = {"spec": {"group": "example.io", "names": {"kind": "Thing"}, "versions": [
        {"name": "v1beta1", "storage": False, "schema": {"openAPIV3Schema": {"type": "string"}}},
        {"name": "v1", "storage": True, "schema": {"openAPIV3Schema": field}}]}}  # fmt: skip
    path = tmp_path / "crd.yaml"
    path.write_text(yaml.safe_dump(crd))
    kept = kept_schema(path, {"repository": "example/thing", "tag": "v1.0.0"})
    assert kept["x-source"]["apiVersion"] == "example.io/v1" and kept["x-source"]["kind"] == "Thing"
    assert (
        kept["x-source"]["repository"] == "example/thing" and len(kept["x-source"]["sha256"]) == 64
    )
    assert {k: v for k, v in kept.items() if k != "x-source"} == {
        "type": "object", "properties": {"description": {"type": "string"}}}  # fmt: skip
