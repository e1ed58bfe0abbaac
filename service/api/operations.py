"""A route declares its method, path, body, query, response and error statuses once: Flask
gets the URL rule, service/http/openapi.py the operation, from the same declaration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint
from pydantic import BaseModel

View = TypeVar("View", bound=Callable[..., Any])
_DECLARED = "api_operation"  # the attribute of a view function that holds its Operation


@dataclass(frozen=True)
class Operation:
    """What the OpenAPI document says about one method of one path."""

    method: str
    operation_id: str  # listItems, from the view's name list_items
    summary: str  # the first line of the view's docstring
    status: int  # of success
    response: type[BaseModel] | None  # None: no body (204)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: Mapping[int, str] = field(default_factory=dict)  # status -> when it happens
    unowned: str | None = None  # why its rows are every caller's (no owner), if they are
    also: Mapping[int, str] = field(default_factory=dict)  # other successes (no body): when


class ApiBlueprint(Blueprint):
    """A blueprint whose routes are declared with `operation`, so all are documented.

    `unowned`: for a resource whose rows have no owner (service/store/sql.py's Resource
    says so too), why every caller may reach all of them; the document states it
    (`x-unowned`), and tests/service/test_owner_matrix.py then expects no isolation."""

    def __init__(self, *args: Any, unowned: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unowned = unowned

    def operation(
        self,
        method: str,
        rule: str,
        *,
        response: type[BaseModel] | None,
        status: int = 200,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        errors: Mapping[int, str] | None = None,
        also: Mapping[int, str] | None = None,
    ) -> Callable[[View], View]:
        def register(view: View) -> View:
            first, *rest = view.__name__.split("_")
            declared = Operation(
                method=method.lower(),
                operation_id=first + "".join(word.title() for word in rest),
                summary=(view.__doc__ or "").strip().splitlines()[0],
                status=status,
                response=response,
                body=body,
                query=query,
                errors=errors or {},
                unowned=self.unowned,
                also=also or {},
            )
            setattr(view, _DECLARED, declared)
            self.add_url_rule(rule, view_func=view, methods=[method])
            return view

        return register


def declared(view: Callable[..., Any]) -> Operation | None:
    """The Operation a view was registered with, if it was declared with `operation`."""
    return getattr(view, _DECLARED, None)
