"""Custom resources checked offline against their CRD's schema, as the API server would.

The schemas are kept beside the tests that use them (tests/release/schemas/,
tests/gitops/schemas/), copied from the operators' own CRDs at pinned releases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Json = Any


def strict(schema: Json) -> Json:
    """The CRD schema with unknown fields refused wherever Kubernetes would prune them
    (`kubectl apply --validate=strict`, Helm 4's and Argo CD's server-side apply)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


def load_strict(path: Path) -> Json:
    """A kept schema, strict; metadata is ObjectMeta, which the CRD leaves open."""
    schema = strict(json.loads(path.read_text()))
    schema["properties"]["metadata"] = {"type": "object"}
    return schema
