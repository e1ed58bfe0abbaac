"""The local kind cluster: create it, install its ingress controller, add TLS.

`make cluster` runs `python -m tools.localcluster up`; the e2e suite imports the same
functions, so both bring the cluster up one way. Every step is idempotent: a second `up`
reuses the cluster, the controller, the namespace and the certificate, and changes nothing.

Two flavours. The official one (laptops, hosted CI): kind's published node image and
ingress-nginx's release manifest, from the internet. Built from source
(CLUSTER_FROM_SOURCE=1, `make cluster-from-source`; our CI machines, which reach only the
package registries): a node image built here (tools/from_source) and Traefik serving the
IngressClass `nginx`, since ingress-nginx's image cannot be built offline.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tools.kind_sandbox import KindSandboxError, kind_environment
from tools.localca import ensure_local_tls, trust_hint
from tools.prereq import find_tool

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_NAME = "app-local"
KIND_CONFIG = ROOT / "local" / "kind-cluster.yaml"
APP_NAMESPACE = "app"
TLS_HOST = "app.localdev.me"
TLS_SECRET = "app-local-tls"  # noqa: S105 - a Secret's name, not a password
# LOCAL_TLS_DIR: where the local CA lives (tests point it at a temporary directory).
TLS_DIR = Path(os.environ.get("LOCAL_TLS_DIR") or ROOT / ".local" / "tls")
CACHE_DIR = ROOT / ".local" / "cache"
HOST_PORTS = (80, 443)
HOST_ADDRESS = "127.0.0.1"

# ingress-nginx's last release (the project is retired upstream); its kind provider
# manifest carries the hostPorts, the ingress-ready nodeSelector and the control-plane
# toleration that local/kind-cluster.yaml is written for.
INGRESS_NGINX_VERSION = "v1.15.1"
INGRESS_NGINX_MANIFEST_URL = (
    "https://raw.githubusercontent.com/kubernetes/ingress-nginx/"
    f"controller-{INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml"
)
INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_CONTROLLER = "deployment/ingress-nginx-controller"
WEBHOOK_CONFIG = "ingress-nginx-admission"
# The from-source flavour's controller (local/from-source/traefik.yaml).
TRAEFIK_NAMESPACE = "ingress-traefik"
TRAEFIK_CONTROLLER = "deployment/traefik"
FROM_SOURCE_ENV = "CLUSTER_FROM_SOURCE"

# A server-side dry run sends this through the admission webhook without creating it:
# it succeeds only once the webhook answers, which is when creating a real Ingress works.
WEBHOOK_PROBE_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ingress-webhook-probe
  namespace: default
spec:
  ingressClassName: nginx
  rules:
    - host: ingress-webhook-probe.localdev.me
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: ingress-webhook-probe
                port:
                  number: 80
"""

Log = Callable[[str], None]


class LocalClusterError(Exception):
    """What is wrong and the command that fixes it."""


def tool(name: str) -> str:
    """Path of kind/kubectl/..., honouring $KIND, $KUBECTL... then bin/ then PATH."""
    path = find_tool(name, env_var=name.upper())
    if path is None:
        raise LocalClusterError(f"`{name}` not found: run `make tools` (installs it into bin/)")
    return path


def from_source(env: Mapping[str, str] = os.environ) -> bool:
    """CLUSTER_FROM_SOURCE=1: the cluster is built from source (see the module docstring)."""
    raw = env.get(FROM_SOURCE_ENV, "").strip().lower()
    if raw in {"", "0", "false", "no", "off"}:
        return False
    if raw in {"1", "true", "yes", "on"}:
        return True
    raise LocalClusterError(f"{FROM_SOURCE_ENV}={raw!r} is not a yes/no value; use 1 or 0")


def ingress_namespace(env: Mapping[str, str] = os.environ) -> str:
    """Where the flavour's ingress controller runs (NetworkPolicies let it reach the pods)."""
    return TRAEFIK_NAMESPACE if from_source(env) else INGRESS_NAMESPACE


def run(
    args: Sequence[str],
    *,
    input_text: str | None = None,
    timeout: float | None = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(args),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LocalClusterError(f"`{args[0]}` not found: run `make tools`") from exc
    except subprocess.TimeoutExpired as exc:
        raise LocalClusterError(f"`{' '.join(args[:3])} ...` did not finish in {timeout}s") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LocalClusterError(f"`{' '.join(args)}` failed:\n  " + "\n  ".join(detail))
    return result


def kubectl(context: str, *args: str, input_text: str | None = None) -> str:
    return run([tool("kubectl"), "--context", context, *args], input_text=input_text).stdout


def context_name(cluster: str = CLUSTER_NAME) -> str:
    return f"kind-{cluster}"


def current_context() -> str:
    """The kube context kubectl would use now (KUBECONFIG and ~/.kube/config honoured)."""
    result = subprocess.run(
        [tool("kubectl"), "config", "current-context"], capture_output=True, text=True, check=False
    )
    context = result.stdout.strip()
    if result.returncode != 0 or not context:
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise LocalClusterError(
            f"no current kube context in {where}: run `make cluster` to create the local kind "
            f"cluster (it selects {context_name()})"
        )
    return context


def require_kind_context(context: str, purpose: str = "`make dev`") -> str:
    """Return the kind cluster name behind `context`, or refuse a context that is not kind.

    Same rule as skaffold's local-cluster detection (`kind-<name>`), so what we accept is
    exactly what skaffold loads images into without pushing to a registry.
    """
    match = re.fullmatch(r"kind-(.+)", context)
    if match is None:
        raise LocalClusterError(
            f"{purpose} deploys dev settings (debug on, an in-cluster dev database) and only "
            f"runs against a local kind cluster, but the current kube context is {context!r}. "
            f"Fix: `make cluster` (creates and selects {context_name()}), or "
            f"`kubectl config use-context {context_name()}` if it exists."
        )
    return match[1]


def cluster_exists(name: str = CLUSTER_NAME) -> bool:
    return name in run([tool("kind"), "get", "clusters"]).stdout.split()


def ports_in_use(ports: Sequence[int] = HOST_PORTS, address: str = HOST_ADDRESS) -> list[int]:
    """Ports on `address` something already listens on (a connect succeeds)."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((address, port)) == 0:
                busy.append(port)
    return busy


def ports_taken_message(busy: Sequence[int], address: str = HOST_ADDRESS) -> str:
    listed = ", ".join(f"{address}:{p}" for p in busy)
    first = busy[0]
    return (
        f"{listed} already in use; the cluster's ingress needs them. Find the listener with "
        f"`sudo lsof -nP -iTCP:{first} -sTCP:LISTEN` (or `sudo ss -ltnp 'sport = :{first}'`) and "
        "stop it; if it is another kind cluster, `kind get clusters` and "
        "`kind delete cluster --name <name>`."
    )


def create_cluster(
    name: str = CLUSTER_NAME,
    config: Path = KIND_CONFIG,
    log: Log = print,
    *,
    image: str | None = None,
) -> str:
    """Create the kind cluster unless it exists; return its kube context.

    `image`: the node image instead of the config's (the one built from source).
    """
    context = context_name(name)
    if cluster_exists(name):
        log(f"cluster {name} exists: reusing it")
        # Restores the context if someone removed it from the kubeconfig.
        run([tool("kind"), "export", "kubeconfig", "--name", name])
        return context
    busy = ports_in_use()
    if busy:
        raise LocalClusterError(ports_taken_message(busy))
    log(f"creating kind cluster {name} from {config} (about a minute)")
    argv = [tool("kind"), "create", "cluster", "--name", name, "--config", str(config)]
    argv += ["--wait", "3m", *([f"--image={image}"] if image else [])]
    try:
        env = kind_environment(tool("docker"))
    except KindSandboxError as exc:
        raise LocalClusterError(str(exc)) from None
    run(argv, timeout=900, env=env)
    return context


def delete_cluster(name: str = CLUSTER_NAME, log: Log = print) -> None:
    if not cluster_exists(name):
        log(f"cluster {name} does not exist: nothing to delete")
        return
    run([tool("kind"), "delete", "cluster", "--name", name], timeout=300)
    log(f"cluster {name} deleted")


def fetch_ingress_manifest(
    url: str = INGRESS_NGINX_MANIFEST_URL, cache_dir: Path = CACHE_DIR
) -> Path:
    """Download the pinned manifest once; later runs apply the same cached bytes."""
    cached = cache_dir / f"ingress-nginx-{INGRESS_NGINX_VERSION}-kind.yaml"
    if not cached.is_file():
        if not url.startswith("https://"):
            raise LocalClusterError(f"refusing to fetch the ingress manifest over {url}: use https")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - https only
                text = response.read().decode()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LocalClusterError(
                f"cannot download {url} ({getattr(exc, 'reason', exc)}); check the network/proxy"
            ) from exc
        verify_ingress_manifest(text)
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached.write_text(text)
    return cached


def verify_ingress_manifest(text: str) -> None:
    """Refuse anything but the pinned release: its controller image pinned by digest."""
    marker = f"ingress-nginx/controller:{INGRESS_NGINX_VERSION}@sha256:"
    if marker not in text or "kind: ValidatingWebhookConfiguration" not in text:
        raise LocalClusterError(
            f"the downloaded ingress-nginx manifest is not release {INGRESS_NGINX_VERSION} "
            f"(no {marker!r}); delete {CACHE_DIR} and retry, or check the proxy"
        )


def install_ingress_nginx(context: str, log: Log = print, timeout_s: int = 300) -> None:
    """Apply the pinned ingress-nginx unless that version already runs, then wait for it."""
    try:
        image = kubectl(
            context,
            "-n",
            INGRESS_NAMESPACE,
            "get",
            INGRESS_CONTROLLER,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        )
    except LocalClusterError:
        image = ""
    if f":{INGRESS_NGINX_VERSION}@" in image:
        log(f"ingress-nginx {INGRESS_NGINX_VERSION} already installed")
    else:
        manifest = fetch_ingress_manifest()
        log(f"installing ingress-nginx {INGRESS_NGINX_VERSION}")
        kubectl(context, "apply", "-f", str(manifest))
    kubectl(
        context,
        "-n",
        INGRESS_NAMESPACE,
        "rollout",
        "status",
        INGRESS_CONTROLLER,
        f"--timeout={timeout_s}s",
    )
    wait_for_ingress_webhook(context, log=log)


def wait_for_ingress_webhook(
    context: str,
    *,
    timeout_s: float = 180,
    interval_s: float = 2,
    log: Log = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Retry a server-side dry-run create of an Ingress until the admission webhook answers.

    The controller reports Ready before its webhook certificate is patched in and the
    webhook Service has endpoints; an Ingress created in that window is rejected
    ("failed calling webhook"). Returns the number of attempts it took.
    """
    kubectl(context, "get", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    deadline = clock() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            kubectl(
                context,
                "create",
                "--dry-run=server",
                "-f",
                "-",
                "-o",
                "name",
                input_text=WEBHOOK_PROBE_INGRESS,
            )
        except LocalClusterError as exc:
            if clock() >= deadline:
                raise LocalClusterError(
                    f"the ingress-nginx admission webhook did not answer within {timeout_s:.0f}s. "
                    f"Look at `kubectl -n {INGRESS_NAMESPACE} get pods,jobs` and "
                    f"`kubectl -n {INGRESS_NAMESPACE} logs {INGRESS_CONTROLLER}`.\n"
                    f"Last error: {exc}"
                ) from exc
            sleep(interval_s)
            continue
        log(f"ingress-nginx admission webhook answers (attempt {attempt})")
        return attempt


def install_traefik(context: str, log: Log = print, timeout_s: int = 300) -> None:
    """The from-source flavour's ingress controller (its image is preloaded in the node)."""
    from tools.from_source.build import traefik_manifest  # the official flavour needs none of it

    log(f"installing Traefik in {TRAEFIK_NAMESPACE} (serves IngressClass nginx)")
    kubectl(context, "apply", "-f", "-", input_text=traefik_manifest())
    kubectl(
        context,
        "-n",
        TRAEFIK_NAMESPACE,
        "rollout",
        "status",
        TRAEFIK_CONTROLLER,
        f"--timeout={timeout_s}s",
    )


def install_ingress(context: str, log: Log = print) -> None:
    """The flavour's ingress controller, waited for until it serves Ingresses."""
    if from_source():
        install_traefik(context, log)
    else:
        install_ingress_nginx(context, log)


def ensure_namespace(context: str, namespace: str = APP_NAMESPACE) -> None:
    """The app namespace, enforcing Pod Security "restricted" like a production cluster."""
    kubectl(
        context,
        "apply",
        "-f",
        "-",
        input_text=(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n"
            f"  name: {namespace}\n  labels:\n"
            "    pod-security.kubernetes.io/enforce: restricted\n"
            "    pod-security.kubernetes.io/enforce-version: latest\n"
        ),
    )


def ensure_tls_secret(
    context: str,
    namespace: str = APP_NAMESPACE,
    *,
    host: str = TLS_HOST,
    secret: str = TLS_SECRET,
    tls_dir: Path = TLS_DIR,
    log: Log = print,
) -> Path:
    """Create or reuse the local CA + certificate and store it as the Ingress TLS Secret.

    Returns the CA certificate's path (what clients verify against).
    """
    tls = ensure_local_tls(host, tls_dir)
    rendered = kubectl(
        context,
        "-n",
        namespace,
        "create",
        "secret",
        "tls",
        secret,
        f"--cert={tls.cert}",
        f"--key={tls.key}",
        "--dry-run=client",
        "-o",
        "yaml",
    )
    # apply, not create: a second run with the same certificate reports "unchanged".
    outcome = kubectl(context, "apply", "-f", "-", input_text=rendered).strip()
    log(f"TLS secret {namespace}/{secret} for {host}: {outcome}")
    if tls.ca_created:
        log(trust_hint(tls.ca_cert).replace("<host>", host))
    return tls.ca_cert


def up(name: str = CLUSTER_NAME, config: Path = KIND_CONFIG, log: Log = print) -> str:
    """Everything `make cluster` does; returns the kube context."""
    image = None
    if from_source():
        from tools.from_source.build import node_image  # builds or reuses, see tools/from_source

        image = node_image(log=log).node
    context = create_cluster(name, config, log, image=image)
    install_ingress(context, log)
    ensure_namespace(context)
    ensure_tls_secret(context, log=log)
    log(
        f"ready: kube context {context}, namespace {APP_NAMESPACE}, https://{TLS_HOST} "
        "(next: `make dev`)"
    )
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.localcluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("up", "down"):
        sub = commands.add_parser(command)
        sub.add_argument("--name", default=CLUSTER_NAME)
    commands.add_parser("require-kind-context", help="print the context, or refuse a non-kind one")
    commands.add_parser("check-ports", help="fail when 127.0.0.1:80/443 are taken")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.name)
        elif args.command == "down":
            delete_cluster(args.name)
        elif args.command == "require-kind-context":
            context = current_context()
            require_kind_context(context)
            print(context)
        elif args.command == "check-ports":
            busy = ports_in_use()
            if busy:
                raise LocalClusterError(ports_taken_message(busy))
    except LocalClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
