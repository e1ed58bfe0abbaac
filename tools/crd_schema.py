"""Keep a CustomResourceDefinition's schema for offline validation (tests/gitops/schemas/).

The operators' CRDs are not packaged anywhere the build machines reach, so their schemas
are copied once from a checkout of the upstream repository at a pinned release and kept
in the tests, the way the Kubernetes definitions are kept (tools/chart_schema.py). This
writes the served version's openAPIV3Schema, descriptions dropped, with where it came
from (repository, tag, commit, path, the file's sha256 and, when a chart installs it,
that chart's name and version):

    python -m tools.crd_schema CHECKOUT/config/crd/bases/postgresql.cnpg.io_clusters.yaml \\
        --repository cloudnative-pg/cloudnative-pg --tag v1.30.0 --commit <sha> \\
        --path config/crd/bases/postgresql.cnpg.io_clusters.yaml \\
        --chart cloudnative-pg@0.29.0 > tests/gitops/schemas/postgresql.cnpg.io_v1_cluster.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

Json = Any


def without_descriptions(node: Json) -> Json:
    """Documentation only: dropping it keeps the kept schema small and its diffs readable."""
    if isinstance(node, dict):
        return {
            key: without_descriptions(value)
            for key, value in node.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [without_descriptions(item) for item in node]
    return node


def served_schema(crd: Json) -> tuple[str, Json]:
    """(apiVersion, schema) of the version the API server stores, which manifests use."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return f"{crd['spec']['group']}/{version['name']}", version["schema"]["openAPIV3Schema"]


def kept_schema(crd_file: Path, source: dict[str, str]) -> Json:
    crd = yaml.safe_load(crd_file.read_text())
    api_version, schema = served_schema(crd)
    return {
        "x-source": {
            **source,
            "sha256": hashlib.sha256(crd_file.read_bytes()).hexdigest(),
            "apiVersion": api_version,
            "kind": crd["spec"]["names"]["kind"],
        },
        **without_descriptions(schema),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd", type=Path, help="the CRD's YAML file in a checkout")
    parser.add_argument("--repository", required=True, help="owner/name on GitHub")
    parser.add_argument("--tag", required=True, help="the release tag checked out")
    parser.add_argument("--commit", required=True, help="the tag's commit (40 hex digits)")
    parser.add_argument("--path", required=True, help="the file's path in the repository")
    parser.add_argument("--chart", help="NAME@VERSION of the Helm chart that installs it")
    args = parser.parse_args(argv)
    source = {"repository": args.repository, "tag": args.tag, "commit": args.commit,
              "path": args.path}  # fmt: skip
    if args.chart:
        name, _, version = args.chart.partition("@")
        source["chart"] = name
        source["chartVersion"] = version
    json.dump(kept_schema(args.crd, source), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
