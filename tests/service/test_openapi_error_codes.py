"""The OpenAPI document names every error code under the status that carries it, and only
codes the service really answers with.

The codes the service emits are read from its source, not from a list kept here: every
`ApiError`, `AuthFailureError` and `error_response` with a literal status and code, and
the status-to-code tables of the HTTP errors Werkzeug and gunicorn raise (HTTP_CODES,
server_errors.CODES). A new code, or a new status for an old one, fails here until the
document says when it happens.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from service.api.operations import ApiBlueprint
from service.http.openapi import WRITE_ERRORS, build_document

SERVICE = Path(__file__).resolve().parents[2] / "service"
EMITTERS = {"ApiError", "AuthFailureError", "error_response"}
# Functions that answer with a code they compute instead of spelling it: each reads it
# from a table this test collects as well.
COMPUTED = {"http_error": "HTTP_CODES"}
# Tables of status -> code, per module.
TABLES = {"http/errors.py": "HTTP_CODES", "http/server_errors.py": "CODES"}
# Codes no operation can document: the router or gunicorn answers them before any
# operation's code runs, whatever the path (an unknown method, oversized headers, a
# malformed request line).
BEFORE_ANY_OPERATION = {
    (405, "method_not_allowed"),
    (431, "headers_too_large"),
    (403, "forbidden"),
    (414, "uri_too_long"),
    (417, "expectation_failed"),
    (501, "not_implemented"),
}
# gunicorn's table: answered for requests that never reach the app.
GUNICORN_MODULE = "http/server_errors.py"

Pair = tuple[int, str]


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _forwards_an_error(status: ast.expr | None, code: ast.expr | None) -> bool:
    """`error_response(exc.status, exc.code, ...)`: an error object built (and scanned)
    elsewhere, answered as it is."""
    return (
        isinstance(status, ast.Attribute)
        and isinstance(code, ast.Attribute)
        and (status.attr, code.attr) == ("status", "code")
        and ast.dump(status.value) == ast.dump(code.value)
    )


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    """(name of the enclosing function, call) for every call in a module."""

    def visit(node: ast.AST, function: str) -> Iterator[tuple[str, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else function
            if isinstance(child, ast.Call):
                yield function, child
            yield from visit(child, inner)

    yield from visit(tree, "<module>")


def emitted_codes() -> dict[str, set[Pair]]:
    """{module: its (status, code) pairs}, from the source of service/."""
    found: dict[str, set[Pair]] = {}
    for path in sorted(SERVICE.rglob("*.py")):
        module = str(path.relative_to(SERVICE))
        tree = ast.parse(path.read_text(), str(path))
        pairs = found.setdefault(module, set())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and module in TABLES
                and [_name(t) for t in node.targets] == [TABLES[module]]
                and isinstance(node.value, ast.Dict)
            ):
                table = zip(node.value.keys, node.value.values, strict=True)
                pairs |= {(ast.literal_eval(k), ast.literal_eval(v)) for k, v in table}  # type: ignore[arg-type]
        for function, call in _functions(tree):
            if _name(call.func) not in EMITTERS:
                continue
            status, code = _argument(call, 0, "status"), _argument(call, 1, "code")
            if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                pairs.add((status.value, code.value))
            elif not _forwards_an_error(status, code) and function not in COMPUTED:
                raise AssertionError(
                    f"service/{module}:{call.lineno}: {_name(call.func)} with a status and "
                    "code that are not literals: spell them out, so this test can tie them "
                    "to the OpenAPI document"
                )
    return {module: pairs for module, pairs in found.items() if pairs}


def app_codes() -> set[Pair]:
    """What the app answers; gunicorn's own table answers before the app is reached."""
    return {pair for module, pairs in emitted_codes().items() if module != GUNICORN_MODULE
            for pair in pairs}  # fmt: skip


def documented(app: Flask) -> Iterator[tuple[str, int, list[str], dict[str, Any]]]:
    """(operation id, status, its codes, the response) for every documented error."""
    for item in build_document(app)["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                narrowed = schema["allOf"][1]["properties"]["error"]["properties"]["code"]
                yield operation["operationId"], int(status), narrowed["enum"], response


def test_the_scan_finds_the_codes_of_every_layer() -> None:
    """Guards the scanner itself: a scan that found nothing would make the rest vacuous."""
    codes = emitted_codes()
    assert (422, "validation_error") in codes["api/requests.py"]
    assert {(503, "auth_unavailable"), (401, "invalid_token")} <= codes["auth/guard.py"]
    assert {(503, "database_unavailable"), (409, "conflict"), (404, "not_found")} <= codes[
        "http/errors.py"
    ]
    assert (405, "method_not_allowed") in codes["http/errors.py"]  # from HTTP_CODES
    assert (501, "not_implemented") in codes[GUNICORN_MODULE]


def test_every_documented_code_is_emitted_with_that_status(app: Flask) -> None:
    emitted = app_codes()
    for operation, status, codes, _ in documented(app):
        for code in codes:
            assert (status, code) in emitted, f"{operation}: {status} `{code}` is never answered"


def test_every_status_lists_every_code_that_carries_it(app: Flask) -> None:
    emitted = app_codes()
    reads = {op["operationId"] for item in build_document(app)["paths"].values()
             for method, op in item.items() if method == "get"}  # fmt: skip
    write_only = {(s, code) for s, causes in WRITE_ERRORS.items() for code, _ in causes}
    for operation, status, codes, response in documented(app):
        # A read commits nothing: a write's codes are not among its answers.
        answered = emitted - write_only if operation in reads else emitted
        carried = {code for s, code in answered if s == status}
        assert carried <= set(codes), f"{operation}: {status} leaves out {carried - set(codes)}"
        for code in codes:
            assert f"`{code}`:" in response["description"], f"{operation} {status}: {code}"


def test_every_code_the_app_emits_is_documented(app: Flask) -> None:
    seen = {(status, code) for _, status, codes, _ in documented(app) for code in codes}
    missing = app_codes() - seen - BEFORE_ANY_OPERATION
    assert missing == set(), "answered by the service but in no operation's responses"


def test_503_names_the_database_and_the_identity_provider(app: Flask) -> None:
    document = build_document(app)
    methods = {op["operationId"]: method for item in document["paths"].values()
               for method, op in item.items() if method != "parameters"}  # fmt: skip
    for operation, status, codes, response in documented(app):
        if status == 503:
            # Only a write has a commit the database may leave unconfirmed.
            writes = {"commit_unconfirmed"} if methods[operation] != "get" else set()
            assert set(codes) == {"database_unavailable", "auth_unavailable", *writes}, operation
            assert "Retry-After" in response["description"]


def test_a_route_declaring_a_status_without_a_code_fails_the_document(app: Flask) -> None:
    teapots = ApiBlueprint("teapots", __name__, url_prefix="/api/v1/teapots")

    @teapots.operation("GET", "", response=None, status=204, errors={418: "A teapot."})
    def brew() -> str:
        """Brew."""
        return ""

    app.register_blueprint(teapots)
    with pytest.raises(LookupError, match="brew declares a 418 error, which has no error code"):
        build_document(app)
