"""The OpenAPI 3.1 document, generated from the app's URL rules and what each route
declares (service/api/operations.py), with schemas from the pydantic models that
validate requests: a route cannot be served and left out."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from service.api.fields import BIGINT_MAX, Error
from service.api.operations import Operation, declared
from service.auth.scopes import SCOPES, required_scope

blueprint = Blueprint("openapi", __name__)

API_PREFIX = "/api/"
REF = "#/components/schemas/{model}"
JSON = "application/json"
_VARIABLE = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


# An error response's causes: (its `error.code`, when the service answers with it). The
# document lists every code under the status that carries it, both in the description
# and as an enum on `error.code`, so a client can branch on the code;
# tests/service/test_openapi_error_codes.py ties them to the codes the service emits.
Causes = list[tuple[str, str]]

RETRY = "retry after the Retry-After seconds."
CHALLENGE = "see the WWW-Authenticate header."
COMMON_ERRORS: dict[int, Causes] = {
    422: [("validation_error", "Invalid parameters or body; `details` names each field.")],
    503: [("database_unavailable", f"The database is unavailable; {RETRY}")],
    500: [("internal_error", "Unexpected error; the detail is logged with the request id.")],
}
AUTH_ERRORS: dict[int, Causes] = {
    401: [
        ("unauthorized", f"No bearer token; {CHALLENGE}"),
        (
            "invalid_token",
            "The token is malformed, expired or not for this API, or its owner "
            f"claim names no owner or a reserved one (`anonymous`, `unowned`); {CHALLENGE}",
        ),
    ],
    403: [("insufficient_scope", f"The token lacks the operation's scope; {CHALLENGE}")],
    503: [("auth_unavailable", f"The issuer's signing keys cannot be loaded; {RETRY}")],
}
# A write's commit the database did not confirm (service/store/commits.py); reads commit
# nothing, so only the methods that write carry it.
WRITE_ERRORS: dict[int, Causes] = {
    503: [
        (
            "commit_unconfirmed",
            "The database did not confirm the write's commit: it may or may not be applied; read "
            f"it back before sending it again; {RETRY}",
        )
    ],
}
WRITE_METHODS = {"post", "put", "patch", "delete"}
BODY_ERRORS: dict[int, Causes] = {
    400: [("bad_request", "The body is not valid JSON, or nests too deeply.")],
    413: [("payload_too_large", "The body is larger than MAX_BODY_BYTES.")],
    415: [("unsupported_media_type", "The body is not sent as application/json.")],
}
# The code of each status a route may declare in its `errors` (service/api/operations.py).
DECLARED_ERROR_CODES = {404: "not_found", 409: "conflict", 422: "validation_error"}
SECURITY_SCHEME = "bearerAuth"


def _declared_errors(operation: Operation) -> dict[int, Causes]:
    causes = {}
    for status, when in operation.errors.items():
        if status not in DECLARED_ERROR_CODES:
            raise LookupError(
                f"{operation.operation_id} declares a {status} error, which has no error code: "
                f"use one of {sorted(DECLARED_ERROR_CODES)} or add its code to DECLARED_ERROR_CODES"
            )
        causes[status] = [(DECLARED_ERROR_CODES[status], when)]
    return causes


def _error_responses(*sources: dict[int, Causes]) -> dict[str, Any]:
    """One response per status, naming each of its codes with when it happens."""
    merged: dict[int, Causes] = {}
    for source in sources:
        for status, causes in source.items():
            merged.setdefault(status, []).extend(causes)
    responses = {}
    for status, causes in merged.items():
        codes = list(dict.fromkeys(code for code, _ in causes))
        description = " ".join(f"`{code}`: {when}" for code, when in causes)
        narrowed = {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}
        schema = {"allOf": [_ref(Error), narrowed]}
        responses[str(status)] = {"description": description, "content": {JSON: {"schema": schema}}}
    return responses


# The rule of object-level authorization (OWASP API1), stated where clients read it.
OWNERSHIP = (
    "Every item, tag and note has an `owner`: the `sub` claim (or the claim AUTH_OWNER_CLAIM "
    "names) of the token that created it, which never changes. A token reaches only its "
    "owner's rows: lists and pages hold only them, names are unique per owner, and another "
    "owner's row answers 404 exactly as a missing one does. A token with the `items:admin` "
    "scope reaches every owner's rows, and its lists take `?owner=`. With access control "
    "off, every request acts as the one owner `anonymous`: isolation needs tokens."
)


def _not_found(variables: list[str]) -> dict[int, Causes]:
    """An id in the path: the row, or its parent, may be missing or another owner's."""
    nouns = " or ".join(name.removesuffix("_id").replace("_", " ") for name in variables)
    return {
        404: [
            (
                "not_found",
                f"No such {nouns}, or it is another owner's: both get this "
                "same answer, so a caller never learns that another owner's row exists.",
            )
        ]
    }


# A list's `?owner=` naming rows the caller does not reach (service/api/requests.py).
OWNER_FILTER_ERRORS: dict[int, Causes] = {
    403: [("insufficient_scope", "`?owner=` names another owner, and the token lacks "
           "`items:admin` (with access control off: an owner other than `anonymous` and "
           "`unowned`); `details` names `query.owner`.")]
}  # fmt: skip


def _path_parameter(name: str) -> dict[str, Any]:
    """Every path variable is a resource id (`<item_id>`), checked by requests.path_id."""
    schema = {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    parameters = []
    for name, property_schema in schema["properties"].items():
        property_schema.pop("title", None)  # the parameter's name says it
        parameters.append(
            {"name": name, "in": "query", "required": name in required, "schema": property_schema}
        )
    return parameters


def _operation(path: str, variables: list[str], operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        success["content"] = {JSON: {"schema": _ref(operation.response)}}
    errors = [_not_found(variables)] if variables else []  # the row, or its parent
    errors.append(_declared_errors(operation))
    result: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary}
    if operation.unowned:
        result["x-unowned"] = operation.unowned
    if operation.query is not None:
        result["parameters"] = _query_parameters(operation.query)
        if "owner" in operation.query.model_fields:
            errors.append(OWNER_FILTER_ERRORS)
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _ref(operation.body)}},
        }
        errors.append(BODY_ERRORS)
    # The scope the access-control guard enforces for this method and path (service/auth/).
    if (scope := required_scope(operation.method.upper(), path)) is not None:
        result["security"] = [{SECURITY_SCHEME: [scope]}]
        errors.append(AUTH_ERRORS)
    errors.append(COMMON_ERRORS)
    if operation.method in WRITE_METHODS:
        errors.append(WRITE_ERRORS)
    others = {str(status): {"description": when} for status, when in operation.also.items()}
    result["responses"] = {str(operation.status): success} | others | _error_responses(*errors)
    return result


def security_schemes() -> dict[str, Any]:
    # A bearer JWT, with each operation's scope in its security requirement (OpenAPI 3.1
    # allows role names there for non-OAuth schemes). Not an oauth2 scheme: its flows need
    # the provider's token URL, which depends on the deployment, not on this API.
    scopes = "; ".join(f"`{name}`: {meaning}" for name, meaning in SCOPES.items())
    return {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from the configured OIDC issuer (docs/auth.md). "
            f"Its `scope` (space-separated) or `scp` (list) claim grants {scopes}. Its `sub` "
            "(or the claim AUTH_OWNER_CLAIM names) is the owner of the rows it creates and "
            "reaches; the reserved owners `anonymous` and `unowned` are refused with 401.",
        }
    }


def api_operations(app: Flask) -> list[tuple[str, list[str], Operation]]:
    """(OpenAPI path, its variables, operation) for every /api rule, in the order routes
    were registered; a rule not declared is an error."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        operation = declared(app.view_functions[rule.endpoint])
        if operation is None:
            raise LookupError(f"{rule.rule} is not declared with ApiBlueprint.operation")
        path = _VARIABLE.sub(r"{\1}", rule.rule)
        found.append((path, _VARIABLE.findall(rule.rule), operation))
    return found


def _components(operations: list[Operation]) -> dict[str, Any]:
    modes: dict[type[BaseModel], JsonSchemaMode] = {Error: "serialization"}
    for operation in operations:
        if operation.body is not None:
            modes[operation.body] = "validation"
        if operation.response is not None:
            modes[operation.response] = "serialization"
    components: dict[str, Any] = {}
    for model, mode in modes.items():
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


def build_document(app: Flask) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    operations = api_operations(app)
    for path, variables, operation in operations:
        item = paths.setdefault(path, {})
        if variables:
            item["parameters"] = [_path_parameter(name) for name in variables]
        item[operation.method] = _operation(path, variables, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Items service", "version": "1", "description": OWNERSHIP},
        "paths": paths,
        "components": {
            "schemas": _components([op for _, _, op in operations]),
            "securitySchemes": security_schemes(),
        },
    }


def document() -> dict[str, Any]:
    """The current app's document, built on first use (the routes are fixed by then)."""
    app = current_app
    if "openapi" not in app.extensions:
        app.extensions["openapi"] = build_document(app)
    cached: dict[str, Any] = app.extensions["openapi"]
    return cached


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """This API's OpenAPI 3.1 document."""
    return jsonify(document())
