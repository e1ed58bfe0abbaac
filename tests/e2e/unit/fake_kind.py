"""A stand-in for kind in the harness unit tests: clusters are names in a state file.

FAKE_KIND_STATE       directory holding clusters.json and calls.jsonl (each argv)
FAKE_KIND_LOAD_ERROR  what `kind load` prints to stderr before failing (unset: it loads)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
  - name: kind-{name}
    cluster:
      server: https://127.0.0.1:6443
contexts:
  - name: kind-{name}
    context:
      cluster: kind-{name}
      user: kind-{name}
current-context: kind-{name}
users:
  - name: kind-{name}
    user:
      token: fake
"""


def option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def main(args: list[str]) -> int:
    state = Path(os.environ["FAKE_KIND_STATE"])
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps(args) + "\n")
    clusters_file = state / "clusters.json"
    clusters: list[str] = json.loads(clusters_file.read_text()) if clusters_file.exists() else []
    command = args[:2]
    name = option(args, "--name") or "kind"
    kubeconfig = option(args, "--kubeconfig")
    if command == ["get", "clusters"]:
        print("\n".join(clusters))
    elif command == ["create", "cluster"]:
        if name in clusters:
            print(f'ERROR: node(s) already exist for a cluster named "{name}"', file=sys.stderr)
            return 1
        clusters.append(name)
        assert kubeconfig is not None
        Path(kubeconfig).write_text(KUBECONFIG.format(name=name))
    elif command == ["export", "kubeconfig"]:
        if name not in clusters:
            print(
                f"ERROR: could not locate any control plane nodes for cluster named '{name}'",
                file=sys.stderr,
            )
            return 1
        assert kubeconfig is not None
        Path(kubeconfig).write_text(KUBECONFIG.format(name=name))
    elif command == ["export", "logs"]:
        if name not in clusters:
            print(f"ERROR: unknown cluster {name!r}", file=sys.stderr)
            return 1
        node = Path(args[2]) / f"{name}-control-plane"
        node.mkdir(parents=True)
        (node / "kubelet.log").write_text("fake kubelet log\n")
    elif command == ["get", "kubeconfig"]:
        if name not in clusters:
            print(f"ERROR: unknown cluster {name!r}", file=sys.stderr)
            return 1
        print(KUBECONFIG.format(name=name))
    elif command == ["load", "docker-image"]:
        if error := os.environ.get("FAKE_KIND_LOAD_ERROR"):
            print(error, file=sys.stderr)
            return 1
    elif command == ["delete", "cluster"]:
        clusters = [c for c in clusters if c != name]
    else:
        print(f"fake kind: unknown command {args}", file=sys.stderr)
        return 1
    clusters_file.write_text(json.dumps(clusters))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
