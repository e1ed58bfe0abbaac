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


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(Error)}}}


COMMON_ERRORS = {
    "422": _error("Invalid parameters or body; `details` names each field."),
    "503": _error(
        "The database is unavailable (`database_unavailable`), or did not confirm a write's "
        "commit (`commit_unconfirmed`: it may or may not be applied; read it back before "
        "sending it again); retry after the Retry-After seconds."
    ),
    "500": _error("Unexpected error; the detail is logged with the request id."),
}
AUTH_ERRORS = {
    "401": _error("No valid bearer token; see the WWW-Authenticate header."),
    "403": _error("The token lacks the operation's scope; see the WWW-Authenticate header."),
}
SECURITY_SCHEME = "bearerAuth"
BODY_ERRORS = {
    "400": _error("The body is not valid JSON."),
    "413": _error("The body is larger than MAX_BODY_BYTES."),
    "415": _error("The body is not sent as application/json."),
}


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


def _operation(path: str, operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        success["content"] = {JSON: {"schema": _ref(operation.response)}}
    responses = {str(operation.status): success}
    responses |= {str(status): _error(when) for status, when in operation.errors.items()}
    result: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary}
    if operation.query is not None:
        result["parameters"] = _query_parameters(operation.query)
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _ref(operation.body)}},
        }
        responses |= BODY_ERRORS
    # The scope the access-control guard enforces for this method and path (service/auth/).
    if (scope := required_scope(operation.method.upper(), path)) is not None:
        result["security"] = [{SECURITY_SCHEME: [scope]}]
        responses |= AUTH_ERRORS
    result["responses"] = responses | COMMON_ERRORS
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
            f"Its `scope` (space-separated) or `scp` (list) claim grants {scopes}.",
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
        item[operation.method] = _operation(path, operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Items service", "version": "1"},
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
