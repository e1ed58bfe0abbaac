"""Every operation of every resource, read from the OpenAPI document, tried by two owners
and an admin: a resource added later is covered without a new test (docs/extending.md).

alice creates a row on every collection (children under her parents); then, for every
operation with an id in its path, bob gets exactly what a missing id gets (recorded, and
replayed after the rows are gone), the admin and alice succeed; lists hold alice's rows
for alice and the admin (and `?owner=alice`), never for bob; every row says who owns it.
A resource whose rows have no owner must say so (`x-unowned`, service/api/operations.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

VARIABLE = re.compile(r"\{(\w+)\}")
_names = itertools.count()


def example(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A small valid value of a JSON schema as pydantic writes them; strings unique."""
    if "$ref" in schema:
        return example(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        return example(next(s for s in schema["anyOf"] if s.get("type") != "null"), components)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        wanted = schema.get("required") or list(properties)[: schema.get("minProperties", 0)]
        return {name: example(properties[name], components) for name in wanted}
    if kind == "string":
        text = f"matrix-{next(_names)}"
        return text.ljust(schema.get("minLength", 0), "x")[: schema.get("maxLength", len(text))]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "array":
        return [example(schema["items"], components) for _ in range(schema.get("minItems", 0))]
    if kind == "boolean":
        return True
    raise AssertionError(f"no example for {schema}")


@dataclass
class Operation:
    path: str
    method: str
    spec: dict[str, Any]

    @property
    def variables(self) -> list[str]:
        return VARIABLE.findall(self.path)

    @property
    def status(self) -> int:
        # The declared success comes first (service/http/openapi.py); others after it
        # (202: DELETE of a tag on more items than one batch, not these rows).
        return next(int(code) for code in self.spec["responses"] if code.startswith("2"))

    @property
    def unowned(self) -> bool:
        return "x-unowned" in self.spec

    def body(self, components: dict[str, Any]) -> Any:
        request = self.spec.get("requestBody")
        if request is None:
            return None
        return example(request["content"]["application/json"]["schema"], components)


@dataclass
class Walk:
    client: FlaskClient
    callers: dict[str, dict[str, str]]
    document: dict[str, Any]
    rows: dict[str, int] = field(default_factory=dict)  # path variable -> alice's row id
    collections: dict[str, str] = field(default_factory=dict)  # path variable -> its list
    owners: dict[str, str] = field(default_factory=dict)  # path variable -> expected owner

    @property
    def components(self) -> dict[str, Any]:
        return self.document["components"]["schemas"]

    def operations(self) -> Iterator[Operation]:
        for path, item in self.document["paths"].items():
            for method, spec in item.items():
                if method != "parameters":
                    yield Operation(path, method.upper(), spec)

    def url(self, operation: Operation) -> str:
        return VARIABLE.sub(lambda m: str(self.rows[m.group(1)]), operation.path)

    def send(self, who: str, operation: Operation, body: Any, query: str = "") -> Any:
        return self.client.open(self.url(operation) + query, method=operation.method,
                                headers=self.callers[who], json=body)  # fmt: skip

    def check_owner(self, operation: Operation, response: Any, variable: str) -> None:
        row = response.json
        if operation.unowned:
            return
        assert isinstance(row, dict) and "owner" in row, (
            f"{operation.method} {operation.path} returns rows without `owner`: make the "
            "resource Owned (service/store/models.py), or say why it is not (ApiBlueprint "
            "unowned=...)"
        )
        assert row["owner"] == self.owners[variable], (operation.path, row)

    def create_alices_rows(self) -> None:
        """A row of alice on every collection, parents first (a child's path names its
        parent's id, known once the parent's collection has been created on)."""
        creates = [op for op in self.operations() if op.method == "POST"]
        while creates:
            ready = [op for op in creates if set(op.variables) <= self.rows.keys()]
            assert ready, f"no way to create the parents of {[op.path for op in creates]}"
            for operation in ready:
                creates.remove(operation)
                response = self.send("alice", operation, operation.body(self.components))
                assert response.status_code == 201, (operation.path, response.json)
                location = response.headers["Location"]
                variable = self.variable_of(location)
                self.rows[variable] = response.json["id"]
                self.collections[variable] = operation.path
                parent = operation.variables[-1] if operation.variables else None
                self.owners[variable] = self.owners[parent] if parent else "alice"
                self.check_owner(operation, response, variable)

    def variable_of(self, location: str) -> str:
        for path in self.document["paths"]:
            pattern = "^" + VARIABLE.sub(r"(?P<\1>[0-9]+)", re.escape(path).replace(r"\{", "{")
                                         .replace(r"\}", "}")) + "$"  # fmt: skip
            if (match := re.match(pattern, location)) and len(match.groupdict()) == 1:
                return next(iter(match.groupdict()))
        raise AssertionError(f"Location {location} matches no path of the document")


def test_every_operation_reaches_only_its_owners_rows(
    protected_app: Flask, callers: dict[str, dict[str, str]]
) -> None:
    client = protected_app.test_client()
    walk = Walk(client, callers, client.get("/openapi.json").json)
    walk.create_alices_rows()
    foreign: list[tuple[Operation, Any, Any]] = []  # bob's answers, to replay as missing ones
    by_id = [op for op in walk.operations() if op.variables]
    tried = 0

    # Creates without an id in the path: each caller's row is its own.
    for operation in walk.operations():
        if operation.method == "POST" and not operation.variables:
            for who, owner in (("bob", "bob"), ("admin", "root")):
                response = walk.send(who, operation, operation.body(walk.components))
                assert response.status_code == 201, (who, operation.path, response.json)
                assert operation.unowned or response.json["owner"] == owner, response.json
            tried += 1

    # Every operation with an id in its path, but the deletes: bob gets a 404, the admin and
    # alice get what the document promises. A create under alice's parent is alice's.
    for operation in (op for op in by_id if op.method != "DELETE"):
        body = operation.body(walk.components)
        response = walk.send("bob", operation, body)
        if not operation.unowned:
            assert response.status_code == 404, (operation.method, operation.path, response.json)
            foreign.append((operation, body, response))
        for who in ("admin", "alice"):
            again = operation.body(walk.components)  # new names: no clash with the last one
            answer = walk.send(who, operation, again)
            assert answer.status_code == operation.status, (who, operation.path, answer.json)
            if isinstance(answer.json, dict) and "id" in answer.json:
                walk.check_owner(operation, answer, operation.variables[-1])
        tried += 1

    # Lists without an id: alice's rows for alice and the admin, none for bob.
    for operation in walk.operations():
        if operation.method != "GET" or operation.variables or "{" in operation.path:
            continue
        variable = next(v for v, path in walk.collections.items() if path == operation.path)
        mine = walk.rows[variable]

        def listed(
            who: str, extra: str = "", operation: Operation = operation, mine: int = mine
        ) -> list[int]:
            query = f"?cursor={mine - 1}&limit=100{extra}"
            page = walk.send(who, operation, None, query).json
            (rows,) = (value for key, value in page.items() if key != "next_cursor")
            return [row["id"] for row in rows]

        for who, extra in (("alice", ""), ("admin", ""), ("admin", "&owner=alice")):
            assert listed(who, extra)[0] == mine, (who, extra, operation.path)
        if not operation.unowned:
            for who, extra in (("bob", ""), ("admin", "&owner=bob")):
                assert mine not in listed(who, extra), (who, extra, operation.path)
            narrowed = walk.send("alice", operation, None, "?owner=bob")  # needs items:admin
            assert narrowed.status_code == 403, (operation.path, narrowed.json)
        tried += 1

    # The deletes: bob's 404s, then the admin removes alice's rows, children first.
    deletes = [op for op in by_id if op.method == "DELETE"]
    for operation in deletes:
        response = walk.send("bob", operation, None)
        if not operation.unowned:
            assert response.status_code == 404, (operation.path, response.json)
            foreign.append((operation, None, response))
    for operation in sorted(deletes, key=lambda op: -len(walk.collections[op.variables[-1]])):
        assert walk.send("admin", operation, None).status_code == operation.status
        assert walk.send("alice", operation, None).status_code == 404
        tried += 1

    # Now every id is missing for alice too: she must get exactly what bob got.
    for operation, body, response in foreign:
        missing = walk.send("alice", operation, body)
        assert (missing.status_code, missing.get_data()) == (
            response.status_code,
            response.get_data(),
        ), f"{operation.method} {operation.path}: another owner's row answers differently"
    assert tried == len(list(walk.operations())), "an operation was not tried"
