"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Valid and invalid requests alike: never a 5xx, every response matches the documented
status codes, content type and schema. Runs in-process against the WSGI app as deployed
(access control on, every request with a valid token holding both scopes) and the real
database (each operation's examples share one rolled-back transaction).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

# Examples per operation and mode: 5 operations x 2 modes x 300 = up to 3,000 requests.
EXAMPLES = 300
OPERATIONS = ["listItems", "createItem", "getItem", "updateItem", "deleteItem"]
sent: dict[str, int] = {}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_api_conforms_to_its_openapi_document(
    protected_app: Flask,
    bearer: Callable[..., dict[str, str]],
    operation_id: str,
    mode: GenerationMode,
) -> None:
    # Hypothesis runs schemathesis's checks on every example; the call counter proves the
    # examples really reached the app (a test that sent nothing would pass vacuously).
    schema = schemathesis.openapi.from_wsgi("/openapi.json", protected_app)
    token = bearer()
    operation = schema.find_operation_by_id(operation_id)
    calls = 0
    refused = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(case: schemathesis.Case) -> None:
        nonlocal calls, refused
        calls += 1
        response = case.call_and_validate(headers=token)
        # Negative mode also drops the Authorization header on purpose (the 401 is checked
        # against the document like any answer); a request that carried it is never refused.
        carried_token = "Authorization" in response.request.headers
        refused += carried_token and response.status_code in (401, 403)

    check()
    sent[f"{operation_id}/{mode.value}"] = calls
    assert calls >= 20, f"only {calls} examples generated for {operation_id} ({mode.value})"
    # The token is valid with both scopes: a refusal would mean the fuzzing never got past
    # access control (401/403 are documented, so the checks alone would not notice).
    assert refused == 0, f"{refused} of {calls} requests with the token refused"


def test_fuzzing_sent_thousands_of_requests() -> None:
    """Runs after the parametrized cases above (pytest keeps file order)."""
    if len(sent) < len(OPERATIONS) * 2:
        pytest.skip("run the whole module to count the requests (a -k selection ran)")
    total = sum(sent.values())
    print(f"schemathesis sent {total} requests: {sent}")
    assert total >= 2000
