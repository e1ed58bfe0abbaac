"""The OpenAPI document is generated from the routes: every /api rule and method is in it,
and a route that was not declared cannot be served undocumented."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.operations import ApiBlueprint
from service.http.openapi import build_document

METHODS_FLASK_ADDS = {"HEAD", "OPTIONS"}


def test_every_api_rule_is_in_the_document(app: Flask, client: FlaskClient) -> None:
    paths = client.get("/openapi.json").json["paths"]
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")]
    assert rules
    for rule in rules:
        path = rule.rule.replace("<", "{").replace(">", "}")
        assert path in paths, f"{rule.rule} is missing from /openapi.json"
        for method in (rule.methods or set()) - METHODS_FLASK_ADDS:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not documented"


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
