"""What a failed run needs to know about the whole kind cluster, kept after it is gone.

kind's own node logs (kubelet, containerd, the control plane's pods: `kind export logs`),
the events and objects of every namespace, the nodes, and the ingress controller's logs
(ingress-nginx's, or Traefik's on a cluster built from source: CLUSTER_FROM_SOURCE=1). The
suite writes them before it deletes a cluster it created after a failure; hosted CI,
which keeps the cluster (E2E_KEEP_CLUSTER=1), runs this module in its failure step:

    python -m tests.e2e.harness.cluster_diagnostics --name app-e2e --out DIR

Every part is collected on its own: one that fails is noted in `problems.txt`, the rest
are still written. The kubeconfig (a credential) never goes into DIR, which CI uploads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.e2e.harness import commands
from tools import localcluster

EXPORT_TIMEOUT_S = 300
KUBECTL_TIMEOUT_S = 120

# file name -> kubectl arguments
CLUSTER_LISTINGS: dict[str, tuple[str, ...]] = {
    "events-all-namespaces.txt": ("get", "events", "--all-namespaces", "-o", "wide",
                                  "--sort-by=.lastTimestamp"),
    "objects-all-namespaces.txt": ("get", "all,jobs,ingress,pvc", "--all-namespaces", "-o",
                                   "wide"),
    "nodes-describe.txt": ("describe", "nodes"),
}  # fmt: skip


def listings(ingress_namespace: str, ingress_controller: str) -> dict[str, tuple[str, ...]]:
    """CLUSTER_LISTINGS and the ingress controller's pods and logs, named by its namespace."""
    return {
        **CLUSTER_LISTINGS,
        f"{ingress_namespace}-pods-describe.txt": ("describe", "pods",
                                                   f"--namespace={ingress_namespace}"),
        f"{ingress_namespace}-controller.log": ("logs", f"--namespace={ingress_namespace}",
                                                ingress_controller, "--all-containers",
                                                "--prefix", "--tail=5000"),
    }  # fmt: skip


def flavour_ingress() -> tuple[str, str]:
    """The ingress controller of this machine's cluster flavour (tools/localcluster.py)."""
    if localcluster.from_source():
        return localcluster.TRAEFIK_NAMESPACE, localcluster.TRAEFIK_CONTROLLER
    return localcluster.INGRESS_NAMESPACE, localcluster.INGRESS_CONTROLLER


def collect(
    *, kind: str, kubectl: str, cluster: str, dest: Path, ingress: tuple[str, str] | None = None
) -> list[str]:
    """Write everything into `dest`; return what could not be collected (also in the files).

    `ingress`: (namespace, controller) whose logs to keep; default: the flavour's.
    """
    dest.mkdir(parents=True, exist_ok=True)
    problems = []
    export = commands.run(
        [kind, "export", "logs", str(dest / "kind-logs"), "--name", cluster],
        timeout=EXPORT_TIMEOUT_S,
        check=False,
    )
    if export.returncode != 0:
        problems.append(f"kind export logs exited {export.returncode}: {export.stderr.strip()}")
    with tempfile.TemporaryDirectory() as private:
        kubeconfig = Path(private) / "kubeconfig"
        config = commands.run([kind, "get", "kubeconfig", "--name", cluster], timeout=60,
                              check=False)  # fmt: skip
        if config.returncode != 0:
            problems.append(f"kind get kubeconfig exited {config.returncode}: {config.stderr}")
            _write_problems(dest, problems)
            return problems
        kubeconfig.write_text(config.stdout, encoding="utf-8")
        kubeconfig.chmod(0o600)
        for name, args in listings(*(ingress or flavour_ingress())).items():
            try:
                proc = commands.run(
                    [kubectl, f"--kubeconfig={kubeconfig}", *args],
                    timeout=KUBECTL_TIMEOUT_S,
                    check=False,
                )
            except commands.CommandError as exc:  # timed out
                problems.append(f"{name}: {exc}")
                continue
            (dest / name).write_text(proc.stdout + proc.stderr, encoding="utf-8")
            if proc.returncode != 0:
                problems.append(f"{name}: kubectl exited {proc.returncode}")
    _write_problems(dest, problems)
    return problems


def _write_problems(dest: Path, problems: list[str]) -> None:
    if problems:
        (dest / "problems.txt").write_text("\n".join(problems) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.harness.cluster_diagnostics", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--name", required=True, help="the kind cluster (e.g. app-e2e)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--kind", default="kind", help="kind binary (default: from PATH)")
    parser.add_argument("--kubectl", default="kubectl", help="kubectl binary (default: PATH)")
    args = parser.parse_args(argv)
    try:
        problems = collect(kind=args.kind, kubectl=args.kubectl, cluster=args.name, dest=args.out)
    except OSError as exc:
        print(f"cluster diagnostics: cannot run {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"cluster diagnostics: {problem}", file=sys.stderr)
    print(f"cluster diagnostics of {args.name} written to {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
