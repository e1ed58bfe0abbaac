"""The OpenAPI 3.1 document, built from the same pydantic models that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic.json_schema import JsonSchemaMode

from service.api import item_schemas as schemas

blueprint = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema)}}}


ITEM_ID = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": schemas.BIGINT_MAX},
}
COMMON_ERRORS = {
    "422": _error("Invalid parameters or body; `details` names each field."),
    "503": _error("The database is unavailable; retry after the Retry-After seconds."),
    "500": _error("Unexpected error; the detail is logged with the request id."),
}
BODY_ERRORS = {
    "400": _error("The body is not valid JSON."),
    "413": _error("The body is larger than MAX_BODY_BYTES."),
    "415": _error("The body is not sent as application/json."),
}


def _paths() -> dict[str, Any]:
    page_params = [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": schemas.PAGE_SIZE_MAX,
                       "default": schemas.PAGE_SIZE_DEFAULT},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "The `next_cursor` of the previous page.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
        },
    ]  # fmt: skip
    return {
        "/api/v1/items": {
            "get": {
                "operationId": "listItems",
                "summary": "List items, oldest first, one page at a time.",
                "parameters": page_params,
                "responses": {"200": _ok("A page of items.", "ItemPage"), **COMMON_ERRORS},
            },
            "post": {
                "operationId": "createItem",
                "summary": "Create an item.",
                "requestBody": _body("ItemCreate"),
                "responses": {
                    "201": _ok("The created item.", "Item"),
                    "409": _error("An item with this name exists."),
                    **BODY_ERRORS,
                    **COMMON_ERRORS,
                },
            },
        },
        "/api/v1/items/{item_id}": {
            "parameters": [ITEM_ID],
            "get": {
                "operationId": "getItem",
                "summary": "Get one item.",
                "responses": {
                    "200": _ok("The item.", "Item"),
                    "404": _error("No such item."),
                    **COMMON_ERRORS,
                },
            },
            "patch": {
                "operationId": "updateItem",
                "summary": "Change some fields of an item.",
                "requestBody": _body("ItemUpdate"),
                "responses": {
                    "200": _ok("The updated item.", "Item"),
                    "404": _error("No such item."),
                    "409": _error("Another item has this name."),
                    **BODY_ERRORS,
                    **COMMON_ERRORS,
                },
            },
            "delete": {
                "operationId": "deleteItem",
                "summary": "Delete an item.",
                "responses": {"204": {"description": "Deleted."}, "404": _error("No such item."),
                              **COMMON_ERRORS},
            },
        },
    }  # fmt: skip


def _components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    inputs = (schemas.ItemCreate, schemas.ItemUpdate)
    outputs = (schemas.Item, schemas.ItemPage, schemas.Error)
    for model in (*inputs, *outputs):
        mode: JsonSchemaMode = "validation" if model in inputs else "serialization"
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return components


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Items service", "version": "1"},
        "paths": _paths(),
        "components": {"schemas": _components()},
    }


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    """This API's OpenAPI 3.1 document."""
    return jsonify(document())
