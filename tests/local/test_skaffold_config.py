"""skaffold.yaml, proven without skaffold: fields, image wiring, file sync, and helm renders.

Every machine runs these, skaffold or not (the live suite runs skaffold itself where a
cluster exists): each profile's helm invocation is rebuilt from skaffold.yaml the way
skaffold's helm deployer builds it (valuesFiles, then setValues, then setValueTemplates
filled with the IMAGE_* values of the built artifact) and rendered with the real helm.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.localcluster import APP_NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
ENVIRONMENTS = ("dev", "staging", "prod")
# A profile for a kind of cluster, not an environment: it patches the dev release.
CLUSTER_PROFILES = ("from-source",)
ALL_PROFILES = {p["name"]: p for p in CONFIG["profiles"]}
PROFILES = {name: p for name, p in ALL_PROFILES.items() if name in ENVIRONMENTS}

# The fields this repository uses, as skaffold/v4beta14 defines them
# (https://skaffold.dev/docs/references/yaml/?version=v4beta14). A typo or a field from
# another schema version fails here instead of at a user's first `skaffold dev`.
SCHEMA: dict[str, Any] = {
    "apiVersion": str,
    "kind": str,
    "metadata": {"name": str},
    "build": "build",
    "deploy": "deploy",
    "portForward": ["portForward"],
    "resourceSelector": {"allow": ["resourceFilter"], "deny": ["resourceFilter"]},
    "profiles": [
        {
            "name": str,
            "activation": [{"command": str, "env": str, "kubeContext": str}],
            "build": "build",
            "deploy": "deploy",
            "portForward": ["portForward"],
            "patches": [{"op": str, "path": str, "value": str}],
        }
    ],
}
DEFINITIONS: dict[str, Any] = {
    "resourceFilter": {"groupKind": str, "image": [str], "labels": [str], "podSpec": [str]},
    "build": {
        "tagPolicy": {"gitCommit": {"variant": str}},
        "artifacts": [
            {
                "image": str,
                "context": str,
                "docker": {"dockerfile": str, "target": str, "buildArgs": {str: str}},
                "sync": {"manual": [{"src": str, "dest": str, "strip": str}]},
            }
        ],
        "local": {"push": bool, "useBuildkit": bool, "concurrency": int},
    },
    "deploy": {
        "helm": {
            "releases": [
                {
                    "name": str,
                    "chartPath": str,
                    "namespace": str,
                    "valuesFiles": [str],
                    "setValues": {str: str},
                    "setValueTemplates": {str: str},
                }
            ]
        }
    },
    "portForward": {
        "resourceType": str,
        "resourceName": str,
        "namespace": str,
        "port": int,
        "address": str,
        "localPort": int,
    },
}


def check(node: Any, schema: Any, where: str) -> list[str]:
    if isinstance(schema, str):
        return check(node, DEFINITIONS[schema], where)
    if isinstance(schema, list):
        if not isinstance(node, list):
            return [f"{where}: expected a list"]
        return [e for i, item in enumerate(node) for e in check(item, schema[0], f"{where}[{i}]")]
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            return [f"{where}: expected a mapping"]
        if list(schema) == [str]:  # free-form string map (setValues, buildArgs)
            # A buildArg without a value (null) is taken from the environment.
            return [
                f"{where}.{k}: expected a string"
                for k, v in node.items()
                if not isinstance(v, str) and not (v is None and where.endswith(".buildArgs"))
            ]
        errors = [
            f"{where}.{key}: not a skaffold/v4beta14 field here"
            for key in node
            if key not in schema
        ]
        return errors + [
            e
            for key in node
            if key in schema
            for e in check(node[key], schema[key], f"{where}.{key}")
        ]
    return [] if isinstance(node, schema) else [f"{where}: expected {schema.__name__}"]


def test_fields_exist_in_the_v4beta14_schema() -> None:
    assert CONFIG["apiVersion"] == "skaffold/v4beta14"
    assert CONFIG["kind"] == "Config"
    assert check(CONFIG, SCHEMA, "skaffold.yaml") == []


def test_schema_check_catches_a_typo() -> None:
    broken = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    broken["profiles"][0]["build"]["artifacts"][0]["sync"]["manuel"] = []
    assert any("manuel" in e for e in check(broken, SCHEMA, "skaffold.yaml"))


def artifacts() -> list[dict[str, Any]]:
    found = list(CONFIG["build"]["artifacts"])
    for profile in CONFIG["profiles"]:
        found += profile.get("build", {}).get("artifacts", [])
    return found


def releases() -> dict[str, dict[str, Any]]:
    found = {"(none)": CONFIG["deploy"]["helm"]["releases"][0]}
    for name, profile in PROFILES.items():
        (release,) = profile["deploy"]["helm"]["releases"]
        found[name] = release
    return found


def sanitized(image: str) -> str:
    """Skaffold's template name for an artifact: `/ - . :` become `_`."""
    return re.sub(r"[/\-.:]", "_", image)


def test_one_artifact_name_and_the_chart_receives_it() -> None:
    names = {a["image"] for a in artifacts()}
    assert len(names) == 1
    (image,) = names
    # The name `make image` builds (make/image.mk: IMAGE ?= ...).
    assert re.search(rf"^IMAGE \?= {re.escape(image)}$", (ROOT / "make/image.mk").read_text(), re.M)
    key = sanitized(image)
    helpers = (ROOT / "charts/app/templates/_helpers.tpl").read_text()
    for profile, release in releases().items():
        templates = release["setValueTemplates"]
        assert templates["image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}", profile
        assert templates["image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}", profile
        for value in templates.values():
            assert set(re.findall(r"\.IMAGE_[A-Z_]+?_(\w+)\}\}", value)) == {key}, profile
        for chart_key in templates:
            assert f".Values.{chart_key}" in helpers, f"{chart_key} is not read by the chart"


def test_every_release_is_the_chart_release_app() -> None:
    for profile, release in releases().items():
        assert release["name"] == "app", profile
        assert release["chartPath"] == "charts/app", profile
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()


def test_profiles_use_their_environment_values_files_which_exist() -> None:
    assert set(ALL_PROFILES) == {*ENVIRONMENTS, *CLUSTER_PROFILES}
    for env in ENVIRONMENTS:
        files = releases()[env]["valuesFiles"]
        assert files[0] == f"values/{env}.yaml"
        for path in files:
            assert (ROOT / path).is_file(), path
    assert releases()["prod"]["valuesFiles"] == ["values/prod.yaml"]
    assert releases()["staging"]["valuesFiles"] == ["values/staging.yaml"]


def test_the_from_source_profile_adds_that_clusters_dev_values_to_the_dev_release() -> None:
    """`make dev` with CLUSTER_FROM_SOURCE=1 runs `-p dev,from-source` (tools/deploy.py):
    skaffold applies `-p` profiles in the order given, so the patch lands on the dev
    release. It has no activation of its own, and its first patch tests that the release
    is the dev one: named with another profile, it fails instead of adding dev values to a
    shared cluster's release."""
    profile = ALL_PROFILES["from-source"]
    assert set(profile) == {"name", "patches"}
    guard, patch = profile["patches"]
    assert guard == {"op": "test", "path": "/deploy/helm/releases/0/valuesFiles/0",
                     "value": "values/dev.yaml"}  # fmt: skip
    assert guard["value"] == PROFILES["dev"]["deploy"]["helm"]["releases"][0]["valuesFiles"][0]
    assert patch["op"] == "add" and patch["path"] == "/deploy/helm/releases/0/valuesFiles/-"
    assert patch["value"] == "local/from-source/dev-values.yaml"
    assert (ROOT / patch["value"]).is_file()


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.I)
        if match:
            current = match[2] or match[1]
            stages[current] = [f"FROM {match[1]}"]
        elif current:
            stages[current].append(line.strip())
    return stages


def stage_setting(stages: dict[str, list[str]], stage: str, instruction: str) -> str | None:
    """The last INSTRUCTION in `stage` or the stages it is built FROM."""
    lines = stages[stage]
    found = [ln.split(None, 1)[1] for ln in lines if ln.upper().startswith(instruction + " ")]
    if found:
        return found[-1]
    parent = lines[0].split()[1]
    return stage_setting(stages, parent, instruction) if parent in stages else None


def test_build_targets_exist_in_the_dockerfile() -> None:
    stages = dockerfile_stages()
    (base,) = CONFIG["build"]["artifacts"]
    assert base["docker"]["target"] in stages
    (dev,) = PROFILES["dev"]["build"]["artifacts"]
    assert dev["docker"]["target"] == "dev"
    assert "dev" in stages


def test_every_artifact_names_its_base_image_the_way_skaffold_can_read_it_offline() -> None:
    """skaffold reads the FROM image itself (ONBUILD, before it hashes the build's inputs)
    with the build args it was given; for an arg without a value it takes the Dockerfile's
    default, a registry image a machine without a registry cannot fetch (found by the live
    suite on our CI machines). So each artifact spells out the environment's BASE_IMAGE,
    falling back to the Dockerfile's own default."""
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert default is not None, "the Dockerfile's ARG BASE_IMAGE has no default"
    expected = f'{{{{ default "{default[1]}" .BASE_IMAGE }}}}'
    for artifact in artifacts():
        assert artifact["docker"]["buildArgs"]["BASE_IMAGE"] == expected, artifact["image"]


def test_dev_sync_globs_match_real_files_in_the_images_working_directory() -> None:
    (artifact,) = PROFILES["dev"]["build"]["artifacts"]
    rules = artifact["sync"]["manual"]
    assert rules
    stages = dockerfile_stages()
    workdir = stage_setting(stages, "dev", "WORKDIR")
    assert workdir == "/app"
    dev_lines = "\n".join(stages["dev"])
    assert "command -v tar" in dev_lines  # sync copies with tar; the image proves it has it
    assert "--chown=10001:10001 /app /app" in dev_lines  # and the app user can write there
    for rule in rules:
        src = rule["src"]
        matches = [p for p in (ROOT / artifact["context"]).glob(src) if p.is_file()]
        assert matches, f"{src} matches no file"
        assert any(p.name == "__init__.py" for p in matches)
        assert rule["dest"] == workdir
        assert rule.get("strip", "") == ""
        # Every synced file lands where the Dockerfile put it: /app/<path in the repo>.
        code_stage = "\n".join(stages["code"])
        top = src.split("/")[0]
        assert f"COPY {top} ./{top}" in code_stage


def test_dev_profile_never_pushes_and_never_pulls_the_kind_loaded_image() -> None:
    dev = PROFILES["dev"]
    assert dev["build"]["local"]["push"] is False
    assert dev["build"]["local"]["useBuildkit"] is True
    assert releases()["dev"]["setValues"]["image.pullPolicy"] == "IfNotPresent"
    # local builds have no registry digest: the dev release must not ask for one
    assert "image.digest" not in releases()["dev"]["setValueTemplates"]
    assert {"command": "dev"} in dev["activation"]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_shared_cluster_profiles_deploy_to_an_explicit_namespace(env: str) -> None:
    assert releases()[env]["namespace"] == APP_NAMESPACE


def test_dev_release_and_port_forward_target_the_local_namespace_and_service() -> None:
    release = releases()["dev"]
    assert release["namespace"] == APP_NAMESPACE
    (forward,) = PROFILES["dev"]["portForward"]
    assert forward["namespace"] == APP_NAMESPACE
    assert forward["address"] == "127.0.0.1"
    assert (forward["resourceType"], forward["resourceName"]) == ("service", "app")


# --- helm renders -----------------------------------------------------------------------

FAKE_IMAGE = {
    "IMAGE_REPO": "registry.example/service",
    "IMAGE_TAG": "0c5276b",
    "IMAGE_DIGEST": "sha256:" + "ab" * 32,
}


def helm_binary() -> str:
    from tools.prereq import require_tool

    return require_tool(
        "helm", provided_by="bash scripts/ci/install-k8s-tools.sh or make tools", env_var="HELM"
    )


def fill_templates(release: dict[str, Any], image: str) -> dict[str, str]:
    filled = {}
    for key, template in release.get("setValueTemplates", {}).items():
        value = template
        for prefix, fake in FAKE_IMAGE.items():
            value = value.replace(f"{{{{.{prefix}_{sanitized(image)}}}}}", fake)
        assert "{{" not in value, f"unfilled template in {key}: {template}"
        filled[key] = value
    return filled


def skaffold_helm_args(profile: str) -> list[str]:
    """helm template arguments equivalent to skaffold's for the profile's release."""
    release = releases()[profile]
    (image,) = {a["image"] for a in artifacts()}
    args = ["template", release["name"], str(ROOT / release["chartPath"])]
    args += ["--namespace", release.get("namespace", "default")]
    for path in release.get("valuesFiles", []):
        args += ["--values", str(ROOT / path)]
    for key, value in release.get("setValues", {}).items():
        args += ["--set", f"{key}={value}"]
    for key, value in fill_templates(release, image).items():
        args += ["--set-string", f"{key}={value}"]
    return args


def render(helm: str, args: list[str]) -> list[dict[str, Any]]:
    result = subprocess.run([helm, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_version(deployment: dict[str, Any]) -> str:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels["app.kubernetes.io/version"]


@pytest.mark.helm
@pytest.mark.parametrize("profile", ENVIRONMENTS)
def test_every_profile_renders_the_chart_with_its_values(profile: str) -> None:
    docs = render(helm_binary(), skaffold_helm_args(profile))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service"} <= kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    if profile == "dev":
        assert container["image"] == f"{FAKE_IMAGE['IMAGE_REPO']}:{FAKE_IMAGE['IMAGE_TAG']}"
        assert container["imagePullPolicy"] == "IfNotPresent"
    else:
        # The digest is what runs; the tag (the git commit) names it and labels the pods.
        repo, tag, digest = (FAKE_IMAGE[k] for k in ("IMAGE_REPO", "IMAGE_TAG", "IMAGE_DIGEST"))
        assert container["image"] == f"{repo}:{tag}@{digest}"
        assert pod_version(deployment) == tag


@pytest.mark.helm
def test_dev_profile_runs_the_reloading_dev_server_with_a_writable_app_dir() -> None:
    docs = render(helm_binary(), skaffold_helm_args("dev"))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["dev"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"] == "app-local-tls"
    assert ingress["spec"]["rules"][0]["host"] == "app.localdev.me"
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "app")
    (forward,) = PROFILES["dev"]["portForward"]
    assert forward["port"] in [p["port"] for p in service["spec"]["ports"]]


@pytest.mark.helm
@pytest.mark.parametrize("env", ["staging", "prod"])
def test_skaffold_render_equals_helm_template_with_the_values_file_apart_from_the_image(
    env: str,
) -> None:
    """`skaffold render -p <env>` adds nothing but the image to values/<env>.yaml."""
    helm = helm_binary()
    image_only = [
        f"--set-string=image.repository={FAKE_IMAGE['IMAGE_REPO']}",
        f"--set-string=image.tag={FAKE_IMAGE['IMAGE_TAG']}",
        f"--set-string=image.digest={FAKE_IMAGE['IMAGE_DIGEST']}",
    ]
    values = str(ROOT / f"values/{env}.yaml")
    chart = str(ROOT / "charts/app")
    plain = render(
        helm, ["template", "app", chart, "--namespace", "app", "--values", values, *image_only]
    )
    assert render(helm, skaffold_helm_args(env)) == plain


# --- skaffold's per-session labels and the migration Job ---------------------------------

RUN_ID = "skaffold.dev/run-id"


def skaffold_labelled(doc: dict[str, Any], run_id: str, denied: list[str]) -> dict[str, Any]:
    """`doc` as skaffold's post-renderer (`skaffold filter`) labels it for one session.

    The rule of skaffold v2.23 (pkg/skaffold/kubernetes/manifest/labels.go, visitor.go):
    for a kind it may label, every `metadata` mapping at any depth gets the labels (an
    existing run-id is overwritten), unless `<path>.labels` is in the kind's deny list.
    """
    labelled = copy.deepcopy(doc)

    def visit(node: Any, path: str) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, path)  # skaffold keeps the path across list items
        elif isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}"
                labels_path = f"{here}.labels"
                if key == "metadata" and isinstance(value, dict) and labels_path not in denied:
                    value.setdefault("labels", {})[RUN_ID] = run_id
                    continue
                visit(value, here)

    visit(labelled, "")
    return labelled


def denied_label_paths(kind: str) -> list[str]:
    """skaffold.yaml's resourceSelector.deny label paths for a kind (`Job` -> Job.batch)."""
    group_kinds = {"Job": "Job.batch", "Deployment": "Deployment.apps"}
    return [
        path
        for rule in CONFIG.get("resourceSelector", {}).get("deny", [])
        if rule["groupKind"] == group_kinds.get(kind)
        for path in rule.get("labels", [])
    ]


def test_skaffold_is_told_to_keep_its_labels_off_the_jobs_pod_template() -> None:
    assert ".spec.template.metadata.labels" in denied_label_paths("Job")
    # ... and only there: the Job's own labels and every other object are still labelled.
    assert denied_label_paths("Deployment") == []


@pytest.mark.helm
def test_two_dev_sessions_deploy_the_same_migration_job() -> None:
    """`make dev` twice (or `skaffold run` twice) on unchanged code: the second session's
    Job must be the first one's exactly, apart from its own (mutable) labels, or Helm
    patches an immutable pod template and the API server refuses the release."""
    docs = render(helm_binary(), skaffold_helm_args("dev"))
    job = next(d for d in docs if d["kind"] == "Job")
    first, second = (skaffold_labelled(job, run, denied_label_paths("Job")) for run in "12")
    assert first["metadata"]["name"] == second["metadata"]["name"]
    assert first["spec"] == second["spec"]
    assert RUN_ID not in first["spec"]["template"]["metadata"]["labels"]
    assert [first["metadata"]["labels"][RUN_ID], second["metadata"]["labels"][RUN_ID]] == ["1", "2"]
    # Without the deny rule the template would differ: the hazard is real in this model.
    unguarded = (skaffold_labelled(job, run, []) for run in "12")
    assert len({json.dumps(u["spec"]["template"], sort_keys=True) for u in unguarded}) == 2
