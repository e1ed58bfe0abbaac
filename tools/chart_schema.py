"""Copy the Kubernetes definitions values.schema.json refers to from kubernetes-validate.

The chart's own keys stay hand-written and strict; Kubernetes sub-objects (security
contexts, resources, volumes, containers...) are validated against the real API schema,
so every field Kubernetes accepts is accepted and a misspelt one is still refused.
`python -m tools.chart_schema` rewrites the `definitions` of charts/app/values.schema.json;
tests/chart/test_chart_values_schema.py fails when they drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "charts" / "app" / "values.schema.json"
# The newest minor kubernetes-validate ships when this was written: the chart has no
# kubeVersion upper bound, so it accepts the newest fields (older API servers drop or
# refuse them themselves).
KUBERNETES_MINOR = "1.37.0"
ROOTS = (
    "io.k8s.api.core.v1.Affinity",
    "io.k8s.api.core.v1.Container",
    "io.k8s.api.core.v1.PodSecurityContext",
    "io.k8s.api.core.v1.ResourceRequirements",
    "io.k8s.api.core.v1.SecurityContext",
    "io.k8s.api.core.v1.Toleration",
    "io.k8s.api.core.v1.Volume",
    "io.k8s.api.core.v1.VolumeMount",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
)
# Documentation only: dropping them keeps the chart small and the schema readable.
DROPPED_KEYWORDS = {"description", "format"}
_REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")

Json = Any


def upstream_definitions() -> dict[str, Json]:
    folder = f"v{KUBERNETES_MINOR}-local-strict"
    path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / folder
    defs: dict[str, Json] = json.loads((path / "_definitions.json").read_text())["$defs"]
    return defs


def _clean(node: Json, refs: set[str]) -> Json:
    """The node without documentation keywords, its $refs made local and collected."""
    if isinstance(node, dict):
        cleaned = {}
        for key, value in node.items():
            if key in DROPPED_KEYWORDS and not isinstance(value, dict):
                continue
            if key == "$ref":
                name = value
                for prefix in _REF_PREFIXES:
                    name = name.removeprefix(prefix)
                refs.add(name)
                value = f"#/definitions/{name}"
            cleaned[key] = _clean(value, refs)
        return cleaned
    if isinstance(node, list):
        return [_clean(item, refs) for item in node]
    return node


def definitions() -> dict[str, Json]:
    """ROOTS and everything they refer to, transitively, sorted by name."""
    upstream = upstream_definitions()
    wanted, done = set(ROOTS), dict[str, Json]()
    while pending := wanted - done.keys():
        for name in sorted(pending):
            refs: set[str] = set()
            done[name] = _clean(upstream[name], refs)
            wanted |= refs
    return dict(sorted(done.items()))


def main() -> int:
    schema = json.loads(SCHEMA.read_text())
    schema["definitions"] = definitions()
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n")
    print(f"{SCHEMA.relative_to(ROOT)}: {len(schema['definitions'])} Kubernetes definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
