"""The code change the hot-reload test makes: /livez answers with a marker.

A real edit of a real handler (service/http/health.py), applied to a temporary copy of the
repository that `skaffold dev` watches. The unit tests apply it to the current
service/http/health.py and call the handler, so a refactor that breaks it fails here first.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from tools.deploy import dev_profiles

HANDLER_FILE = Path("service") / "http" / "health.py"
HANDLER = "livez"
MARKER_FIELD = "e2e_hot_reload"


class HandlerShapeError(AssertionError):
    pass


def add_marker_to_livez(source: str, marker: str) -> str:
    """Return `source` with livez() answering its usual JSON plus {MARKER_FIELD: marker}.

    The handler's one return statement keeps its original response and adds a field, so
    the edit holds whatever livez() reports, as long as it returns a JSON response built
    with the module's `jsonify` (the unit tests check both on the real file).
    """
    tree = ast.parse(source)
    handler = next(
        (node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == HANDLER),
        None,
    )
    if handler is None:
        raise HandlerShapeError(
            f"{HANDLER_FILE} has no top-level def {HANDLER}(); update "
            "tests/e2e/harness/hot_reload.py to edit the handler that serves /livez"
        )
    returns = [node for node in ast.walk(handler) if isinstance(node, ast.Return)]
    if len(returns) != 1 or returns[0].value is None:
        raise HandlerShapeError(
            f"{HANDLER}() in {HANDLER_FILE} should have exactly one `return <response>`; "
            f"found {len(returns)}"
        )
    ret = returns[0]
    assert ret.value is not None and ret.end_lineno is not None
    lines = source.splitlines(keepends=True)
    indent = " " * ret.col_offset
    original = ast.get_source_segment(source, ret.value)
    assert original is not None
    replacement = (
        f"{indent}return jsonify(**{{**({original}).get_json(), {MARKER_FIELD!r}: {marker!r}}})\n"
    )
    return "".join(lines[: ret.lineno - 1]) + replacement + "".join(lines[ret.end_lineno :])


def marker_in(body: Any) -> str | None:
    if isinstance(body, dict):
        value = body.get(MARKER_FIELD)
        return value if isinstance(value, str) else None
    return None


SKAFFOLD_DEV_VALUES = Path("local") / "skaffold-dev-values.yaml"


def move_skaffold_ingress(context: Path, ingress_overlay: dict[str, Any]) -> Path:
    """Put the suite's Ingress (own hostname) into the copy's skaffold dev values.

    skaffold.yaml's dev profile deploys values/dev.yaml plus local/skaffold-dev-values.yaml;
    the copy's second file gets the overlay, so the working tree is never edited.
    """
    path = context / SKAFFOLD_DEV_VALUES
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if "ingress" in values:
        raise HandlerShapeError(
            f"{SKAFFOLD_DEV_VALUES} already sets `ingress`; merge the e2e overlay into it in "
            "tests/e2e/harness/hot_reload.py"
        )
    values.update(ingress_overlay)
    path.write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    return path


def skaffold_dev_argv(skaffold: str, *, namespace: str, kube_context: str, tag: str) -> list[str]:
    return [
        skaffold,
        "dev",
        # As `make dev` (tools/deploy.py): on a cluster built from source, its flavour too.
        f"--profile={dev_profiles()}",
        # Overrides the profile's `namespace: app` (skaffold: the flag wins over the release).
        f"--namespace={namespace}",
        f"--kube-context={kube_context}",
        # Our own kubectl port-forward (tests/e2e/harness/port_forward.py) reaches the pod.
        "--port-forward=off",
        # The copy is not a git checkout, so the gitCommit tagger has nothing to read.
        f"--tag={tag}",
        "--cleanup=true",
        "--update-check=false",
    ]


def skaffold_run_argv(skaffold: str, *, namespace: str, kube_context: str, tag: str) -> list[str]:
    """One `skaffold run` session of the dev profile (what `make dev` deploys), which leaves
    its release in place, as a `make dev` that was killed or a CI deploy would."""
    return [
        skaffold,
        "run",
        # As `make dev` (tools/deploy.py): on a cluster built from source, its flavour too.
        f"--profile={dev_profiles()}",
        f"--namespace={namespace}",
        f"--kube-context={kube_context}",
        f"--tag={tag}",
        "--port-forward=off",
        "--update-check=false",
    ]
