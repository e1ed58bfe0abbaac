"""The OpenAPI document is generated from the routes: every /api rule and method is in it,
and a route that was not declared cannot be served undocumented."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.operations import ApiBlueprint
from service.http.openapi import build_document

METHODS_FLASK_ADDS = {"HEAD", "OPTIONS"}


def test_the_document_holds_exactly_the_api_rules(app: Flask, client: FlaskClient) -> None:
    """Every /api rule and method, and nothing else: the paths come from the app, so a new
    resource needs no change here."""
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    document = response.json
    assert document["openapi"].startswith("3.")
    json.dumps(document)
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")]
    assert rules
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {
        (rule.rule.replace("<", "{").replace(">", "}"), method)
        for rule in rules
        for method in (rule.methods or set()) - METHODS_FLASK_ADDS
    }
    assert documented == served


def test_an_undeclared_api_route_fails_the_document(app: Flask) -> None:
    @app.get("/api/v1/undeclared")
    def undeclared() -> str:
        return "no"

    with pytest.raises(LookupError, match="/api/v1/undeclared"):
        build_document(app)


def test_a_declared_route_documents_its_body_response_and_errors(app: Flask) -> None:
    from service.api.item_schemas import Item, ItemCreate

    widgets = ApiBlueprint("widgets", __name__, url_prefix="/api/v1/widgets")

    @widgets.operation("POST", "/<widget_id>", body=ItemCreate, response=Item, status=201,
                       errors={409: "Taken."})  # fmt: skip
    def create_widget(widget_id: str) -> str:
        """Make a widget."""
        return widget_id

    app.register_blueprint(widgets)
    path = build_document(app)["paths"]["/api/v1/widgets/{widget_id}"]
    assert path["parameters"][0]["name"] == "widget_id"
    post = path["post"]
    assert post["operationId"] == "createWidget" and post["summary"] == "Make a widget."
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ItemCreate"
    )
    assert {"201", "409", "400", "413", "415", "422", "500", "503"} <= set(post["responses"])


def test_the_document_states_the_ownership_rules(client: FlaskClient) -> None:
    """`owner` in every row, `items:admin`, `?owner=` on lists, and the 404 rule on every
    operation with an id in its path, declared by no route: the document adds them."""
    document = client.get("/openapi.json").json
    schemas = document["components"]["schemas"]
    assert "items:admin" in document["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert "404" in document["info"]["description"] and "owner" in document["info"]["description"]
    for row in ("Item", "Tag", "Note"):
        assert "owner" in schemas[row]["required"], row
        assert "never changes" in schemas[row]["properties"]["owner"]["description"]
    operations = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            operations += 1
            if "{" in path:
                assert "another owner's" in operation["responses"]["404"]["description"], path
            else:
                assert "404" not in operation["responses"], path
            if method == "get" and "{" not in path.rsplit("/", 1)[-1]:  # a list
                names = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
                assert "owner" in names, path
    assert operations >= 13


def test_an_unowned_resource_says_so_in_the_document(app: Flask) -> None:
    from service.api.item_schemas import Item

    shared = ApiBlueprint("shared", __name__, url_prefix="/api/v1/shared", unowned="A lookup list.")

    @shared.operation("GET", "/<shared_id>", response=Item)
    def get_shared(shared_id: str) -> str:
        """Get one."""
        return shared_id

    app.register_blueprint(shared)
    operation = build_document(app)["paths"]["/api/v1/shared/{shared_id}"]["get"]
    assert operation["x-unowned"] == "A lookup list."
    assert "x-unowned" not in build_document(app)["paths"]["/api/v1/items"]["get"]
