"""Deploy the chart: `make dev` (skaffold on the local kind cluster) and `make deploy ENV=...`.

Both check their inputs before touching a cluster: an unknown environment, a kube
context that is not kind (for dev settings), or a staging/prod context other than the one
configured for that environment (DEPLOY_CONTEXT_STAGING, DEPLOY_CONTEXT_PROD) is refused
with the fix, and nothing runs. A deploy waits for the migration Job and rolls a failed
upgrade back (Helm 3 `--atomic`, Helm 4 `--rollback-on-failure`).

On a kind cluster built from source (CLUSTER_FROM_SOURCE=1, `make cluster-from-source`)
the dev environment also takes local/from-source/dev-values.yaml: the dev database's
image preloaded there (skaffold's `from-source` profile for `make dev`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from tools.localcluster import (
    APP_NAMESPACE,
    LocalClusterError,
    current_context,
    ensure_namespace,
    ensure_tls_secret,
    from_source,
    require_kind_context,
    run,
    tool,
)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "app"
VALUES_DIR = ROOT / "values"
RELEASE = "app"
ENVIRONMENTS = ("dev", "staging", "prod")
# Image references: repository:tag, or repository@sha256:<digest> (what staging and prod
# deploy: values/{staging,prod}.yaml set image.requireDigest).
_TAGGED = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGESTED = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
PINNED_ENVS = ("staging", "prod")
# Shared clusters deploy only to the context named for them: a forgotten
# `kubectl config use-context` must never send prod's values to another cluster, or
# staging's to prod.
CONTEXT_VARIABLES = {env: f"DEPLOY_CONTEXT_{env.upper()}" for env in PINNED_ENVS}
_HELM_VERSION = re.compile(r"^v(\d+)\.(\d+)")


def values_file(env: str) -> Path:
    if not env:
        raise LocalClusterError("ENV is required: `make deploy ENV=dev` (or ENV=staging, ENV=prod)")
    if env not in ENVIRONMENTS:
        raise LocalClusterError(
            f"ENV={env!r} is not an environment: use ENV=dev, ENV=staging or ENV=prod "
            "(each has values/<env>.yaml)"
        )
    path = VALUES_DIR / f"{env}.yaml"
    if not path.is_file():
        raise LocalClusterError(f"{path} is missing: restore it with `git checkout -- {path}`")
    return path


def image_values(image: str, env: str) -> list[str]:
    """The --set-string arguments for DEPLOY_IMAGE, checked for what `env` requires."""
    if not image:
        if env == "dev":
            raise LocalClusterError(
                "DEPLOY_IMAGE is required for ENV=dev: kind has no registry, so the image is "
                "loaded from your Docker. Build one with `make image`, then "
                "`make deploy ENV=dev DEPLOY_IMAGE=service:<tag it printed>` (or use `make dev`)"
            )
        raise LocalClusterError(
            f"DEPLOY_IMAGE is required for ENV={env}: it deploys exactly the image you tested, "
            "by digest: DEPLOY_IMAGE=registry.example/service@sha256:<digest>"
        )
    if _DIGESTED.match(image):
        name, digest = image.split("@", 1)
        repository, _, tag = (
            name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
        )
        # repository:tag@digest: the digest is pulled, the tag labels the pods' version.
        tag_value = [f"image.tag={tag}"] if tag else []
        return [f"image.repository={repository}", *tag_value, f"image.digest={digest}"]
    if env in PINNED_ENVS:
        raise LocalClusterError(
            f"DEPLOY_IMAGE={image!r}: ENV={env} deploys by digest only (a tag can be moved): "
            "DEPLOY_IMAGE=registry.example/service@sha256:<digest>"
        )
    if not _TAGGED.match(image) or image.rsplit(":", 1)[1] == "latest":
        raise LocalClusterError(
            f"DEPLOY_IMAGE={image!r} must be repository:tag with a real tag (not `latest`), "
            "e.g. DEPLOY_IMAGE=service:$(git rev-parse --short HEAD)"
        )
    repository, tag = image.rsplit(":", 1)
    return [f"image.repository={repository}", f"image.tag={tag}"]


def require_configured_context(env: str, context: str) -> None:
    """staging/prod: the current context must be the one configured for `env`."""
    variable = CONTEXT_VARIABLES[env]
    expected = os.environ.get(variable, "").strip()
    if not expected:
        raise LocalClusterError(
            f"ENV={env} deploys only to the kube context configured for it, and {variable} "
            f"is unset: `export {variable}=<context>` (see `kubectl config get-contexts`), "
            f"then `kubectl config use-context <context>`"
        )
    if context != expected:
        raise LocalClusterError(
            f"the current kube context is {context!r}, but {variable}={expected!r}: switch "
            f"with `kubectl config use-context {expected}` (or fix {variable})"
        )


def helm_major(helm: str) -> int:
    """3 or 4, from `helm version --short` (the two spell rollback-on-failure differently)."""
    result = subprocess.run(
        [helm, "version", "--short"], capture_output=True, text=True, timeout=60, check=False
    )
    match = _HELM_VERSION.match(result.stdout.strip())
    if result.returncode != 0 or not match or int(match[1]) not in (3, 4):
        raise LocalClusterError(
            f"{helm} is not Helm 3 or 4 (`helm version --short` said "
            f"{(result.stdout or result.stderr).strip()!r}): run `make tools`"
        )
    major, minor = int(match[1]), int(match[2])
    if major == 3 and minor < 17:
        raise LocalClusterError(
            f"{helm} is Helm 3.{minor}: the chart needs 3.17+, run `make tools`"
        )
    return major


def rollback_flag(major: int) -> str:
    """Undo a failed upgrade (a failed first install is uninstalled): Helm 4 renamed it."""
    return "--rollback-on-failure" if major == 4 else "--atomic"


def prepare_kind_namespace(context: str, namespace: str) -> None:
    """Namespace + TLS Secret the dev values expect; both idempotent."""
    ensure_namespace(context, namespace)
    ensure_tls_secret(context, namespace)


def dev_profiles() -> str:
    """skaffold's profiles for the dev loop on this cluster: on one built from source, its
    flavour's too (skaffold.yaml, `from-source`; after `dev`, whose release it patches)."""
    return "dev,from-source" if from_source() else "dev"


def dev(namespace: str, extra_args: list[str]) -> None:
    """Refuse a non-kind context, prepare the namespace, then hand over to `skaffold dev`."""
    context = current_context()
    require_kind_context(context, "`make dev`")
    skaffold = tool("skaffold")
    profiles = dev_profiles()  # a bad CLUSTER_FROM_SOURCE is refused before anything changes
    prepare_kind_namespace(context, namespace)
    args = [skaffold, "dev", "--profile", profiles, "--kube-context", context, *extra_args]
    print(f"$ {' '.join(args)}", flush=True)
    os.chdir(ROOT)
    # skaffold owns the terminal from here (Ctrl-C cleans up)
    os.execv(skaffold, args)  # noqa: S606


def deploy(env: str, namespace: str, image: str | None, timeout: str) -> None:
    """`helm upgrade --install --wait --wait-for-jobs` with rollback, values/<env>.yaml,
    against the current context (checked for the environment first)."""
    values = [values_file(env)]
    if env == "dev" and from_source():
        from tools.from_source.build import DEV_VALUES  # the official flavour needs none of it

        values.append(DEV_VALUES)
    image_sets = image_values(image or "", env)
    context = current_context()
    if env in PINNED_ENVS:
        require_configured_context(env, context)
    else:
        cluster = require_kind_context(context, "`make deploy ENV=dev`")
    helm = tool("helm")
    major = helm_major(helm)
    if env == "dev":
        prepare_kind_namespace(context, namespace)
        # kind has no registry: the image must be in the node's containerd already.
        run([tool("kind"), "load", "docker-image", image or "", "--name", cluster], timeout=600)
    args = [
        helm,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        *[arg for path in values for arg in ("--values", str(path))],
        "--namespace",
        namespace,
        "--kube-context",
        context,
        # The migration Job is part of the release: a failed migration fails the deploy,
        # and the rollback removes the failed Job, so the next deploy runs it anew.
        "--wait",
        "--wait-for-jobs",
        rollback_flag(major),
        "--timeout",
        timeout,
    ]
    for value in image_sets:
        args += ["--set-string", value]
    print(
        f"deploying {RELEASE} with {' and '.join(str(v.relative_to(ROOT)) for v in values)} to "
        f"{context}/{namespace}",
        flush=True,
    )
    os.execv(helm, args)  # noqa: S606 - helm streams its own progress and exit status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dev_parser = commands.add_parser("dev", help="skaffold dev on the local kind cluster")
    dev_parser.add_argument("skaffold_args", nargs="*", help="passed on to skaffold dev")
    deploy_parser = commands.add_parser("deploy", help="helm upgrade --install for one environment")
    deploy_parser.add_argument("--env", default="")
    deploy_parser.add_argument("--namespace", default=APP_NAMESPACE)
    deploy_parser.add_argument(
        "--image", default="", help="repository:tag (dev) or repository@sha256:digest"
    )
    deploy_parser.add_argument("--timeout", default="10m")
    args = parser.parse_args(argv)
    try:
        if args.command == "dev":
            dev(APP_NAMESPACE, args.skaffold_args)
        else:
            deploy(args.env, args.namespace, args.image or None, args.timeout)
    except LocalClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
