"""What a failed live test leaves behind: the namespace's state, events and pod logs.

Written under .local/e2e/artifacts/<namespace>/ (hosted CI uploads that directory when
the suite fails), so a failure on a remote runner can be read without the cluster.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness.k8s_state import pod_summary
from tests.e2e.harness.kubectl import Kubectl


def namespace_summary(kubectl: Kubectl) -> str:
    """Pods with why they wait, and the latest events: enough for a timeout message."""
    parts = []
    try:
        pods = kubectl.get_json("pods")["items"]
        parts.append("pods:\n" + ("\n".join(f"  {pod_summary(p)}" for p in pods) or "  (none)"))
    except AssertionError as exc:
        parts.append(f"pods: unavailable ({exc})")
    events = kubectl.run("get", "events", "--sort-by=.lastTimestamp", check=False, timeout=60)
    lines = (events.stdout or events.stderr).strip().splitlines()
    parts.append("latest events:\n" + "\n".join(f"  {line}" for line in lines[-25:]))
    return "\n".join(parts)


def dump_namespace(kubectl: Kubectl, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    listings = {
        "objects.txt": ("get", "all,jobs,pvc,ingress,configmaps", "-o", "wide"),
        "events.txt": ("get", "events", "--sort-by=.lastTimestamp"),
        "pods-describe.txt": ("describe", "pods"),
        "jobs-describe.txt": ("describe", "jobs"),
    }
    for name, args in listings.items():
        proc = kubectl.run(*args, check=False, timeout=120)
        (dest / name).write_text(proc.stdout + proc.stderr, encoding="utf-8")
    pods = kubectl.run("get", "pods", "-o", "name", check=False, timeout=60).stdout.split()
    for pod in pods:
        logs = kubectl.run(
            "logs", pod, "--all-containers", "--prefix", "--tail=500", check=False, timeout=120
        )
        previous = kubectl.run(
            "logs", pod, "--all-containers", "--prefix", "--previous", "--tail=200",
            check=False, timeout=120,
        )  # fmt: skip
        text = logs.stdout + logs.stderr
        if previous.returncode == 0:
            text += "\n--- previous containers ---\n" + previous.stdout
        (dest / f"{pod.replace('/', '-')}.log").write_text(text, encoding="utf-8")
    return dest
