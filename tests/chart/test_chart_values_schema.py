"""values.schema.json validates Kubernetes sub-objects with the real API definitions
(copied by tools/chart_schema.py from kubernetes-validate) and the chart's own keys
strictly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from tests.chart.chartlib import CHART
from tools import chart_schema

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_kubernetes_definitions_are_the_generated_ones() -> None:
    assert SCHEMA["definitions"] == chart_schema.definitions(), (
        "charts/app/values.schema.json is out of date: run `python -m tools.chart_schema`"
    )


def test_every_reference_resolves() -> None:
    names = {f"#/definitions/{name}" for name in SCHEMA["definitions"]}
    dangling = sorted(set(refs(SCHEMA)) - names)
    assert not dangling, dangling


def test_kubernetes_sub_objects_use_the_api_definitions() -> None:
    props = SCHEMA["properties"]
    expected = {
        "podSecurityContext": "io.k8s.api.core.v1.PodSecurityContext",
        "containerSecurityContext": "io.k8s.api.core.v1.SecurityContext",
        "resources": "io.k8s.api.core.v1.ResourceRequirements",
    }
    for key, name in expected.items():
        assert {"$ref": f"#/definitions/{name}"} in props[key]["allOf"], key
    assert props["sidecars"]["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}
    assert props["extraVolumes"]["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Volume"}


def test_the_charts_own_keys_stay_strict() -> None:
    def objects(node: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict) and "properties" in node and not node.get("allOf"):
            yield path, node
            for key, child in node["properties"].items():
                yield from objects(child, f"{path}.{key}")

    open_objects = [
        path
        for path, node in objects(SCHEMA, "")
        if node.get("additionalProperties") is not False and path not in {".config"}
    ]
    assert SCHEMA["additionalProperties"] is False
    assert not open_objects, open_objects
