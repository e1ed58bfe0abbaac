"""local/kind-cluster.yaml: valid kind v1alpha4 config, with the ports and label ingress needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tools.localcluster import CLUSTER_NAME, HOST_ADDRESS, HOST_PORTS, KIND_CONFIG

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load(KIND_CONFIG.read_text())

# kind's v1alpha4 types (sigs.k8s.io/kind/pkg/apis/config/v1alpha4/types.go): the fields of
# Cluster, Node and PortMapping with their YAML types. kind decodes strictly, so an unknown
# key or a wrong type (a YAML boolean as a label value) fails `kind create cluster`.
CLUSTER_FIELDS = {
    "kind": str,
    "apiVersion": str,
    "name": str,
    "nodes": list,
    "networking": dict,
    "featureGates": dict,
    "runtimeConfig": dict,
    "kubeadmConfigPatches": list,
    "kubeadmConfigPatchesJSON6902": list,
    "containerdConfigPatches": list,
    "containerdConfigPatchesJSON6902": list,
}
NODE_FIELDS = {
    "role": str,
    "image": str,
    "labels": dict,
    "extraMounts": list,
    "extraPortMappings": list,
    "kubeadmConfigPatches": list,
    "kubeadmConfigPatchesJSON6902": list,
}
PORT_MAPPING_FIELDS = {"containerPort": int, "hostPort": int, "listenAddress": str, "protocol": str}
ROLES = {"control-plane", "worker"}
PROTOCOLS = {"TCP", "UDP", "SCTP"}


def violations(config: dict[str, Any]) -> list[str]:
    errors = []

    def fields(obj: dict[str, Any], allowed: dict[str, type], where: str) -> None:
        for key, value in obj.items():
            if key not in allowed:
                errors.append(f"{where}.{key}: not a v1alpha4 field")
            elif not isinstance(value, allowed[key]) or isinstance(value, bool) != (
                allowed[key] is bool
            ):
                errors.append(f"{where}.{key}: expected {allowed[key].__name__}")

    if config.get("kind") != "Cluster" or config.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
        errors.append("kind: Cluster / apiVersion: kind.x-k8s.io/v1alpha4 required")
    fields(config, CLUSTER_FIELDS, "cluster")
    for i, node in enumerate(config.get("nodes", [])):
        fields(node, NODE_FIELDS, f"nodes[{i}]")
        if node.get("role", "control-plane") not in ROLES:
            errors.append(f"nodes[{i}].role: one of {sorted(ROLES)}")
        for key, value in node.get("labels", {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                errors.append(f"nodes[{i}].labels.{key}: label values must be strings")
        for j, mapping in enumerate(node.get("extraPortMappings", [])):
            fields(mapping, PORT_MAPPING_FIELDS, f"nodes[{i}].extraPortMappings[{j}]")
            if mapping.get("protocol", "TCP") not in PROTOCOLS:
                errors.append(f"nodes[{i}].extraPortMappings[{j}].protocol: one of {PROTOCOLS}")
            for port in ("containerPort", "hostPort"):
                if not 0 < mapping.get(port, 1) < 65536:
                    errors.append(f"nodes[{i}].extraPortMappings[{j}].{port}: 1-65535")
    return errors


def test_config_is_valid_v1alpha4() -> None:
    assert violations(CONFIG) == []


def test_validator_rejects_what_kind_rejects() -> None:
    broken = yaml.safe_load(KIND_CONFIG.read_text())
    broken["nodes"][0]["labels"] = {"ingress-ready": True}  # unquoted YAML boolean
    broken["nodes"][0]["extraPortMapping"] = []  # typo
    broken["nodes"][0]["extraPortMappings"][0]["protocol"] = "tcp"
    errors = violations(broken)
    assert any("labels.ingress-ready" in e for e in errors)
    assert any("extraPortMapping:" in e for e in errors)
    assert any("protocol" in e for e in errors)


def test_cluster_name_is_the_one_the_tooling_uses() -> None:
    assert CONFIG["name"] == CLUSTER_NAME == "app-local"


def control_plane() -> dict[str, Any]:
    (node,) = CONFIG["nodes"]
    assert node["role"] == "control-plane"
    return node


def test_ports_80_and_443_are_published_on_loopback_only() -> None:
    mappings = control_plane()["extraPortMappings"]
    published = {(m["containerPort"], m["hostPort"]) for m in mappings}
    assert published == {(port, port) for port in HOST_PORTS}
    for mapping in mappings:
        assert mapping["listenAddress"] == HOST_ADDRESS == "127.0.0.1"
        assert mapping["protocol"] == "TCP"


def test_node_carries_the_label_ingress_nginx_selects() -> None:
    # ingress-nginx's kind provider manifest: nodeSelector {ingress-ready: "true"}
    assert control_plane()["labels"] == {"ingress-ready": "true"}


def test_node_image_is_pinned_by_digest_to_a_minor_the_chart_supports() -> None:
    image = control_plane()["image"]
    match = re.fullmatch(r"kindest/node:v1\.(\d+)\.\d+@sha256:[0-9a-f]{64}", image)
    assert match, image
    chart = yaml.safe_load((ROOT / "charts/app/Chart.yaml").read_text())
    (low,) = re.findall(r"1\.(\d+)\.0", chart["kubeVersion"])  # a lower bound only
    assert int(low) <= int(match[1])
