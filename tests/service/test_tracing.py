"""Traces (issue 28) from the real service (gunicorn, PostgreSQL) to a real OTLP/HTTP
receiver that decodes every payload with opentelemetry-proto (tools/otlp_receiver.py):
spans, their parents, attributes and resource; sampled and unsampled callers; a receiver
that is down or slow; no endpoint; the span ids in the logs and the exemplars."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service.telemetry.export_log import EXPORTER_LOGGER
from tools.devtoken import SigningKey, jwks
from tools.localpg import free_port
from tools.otlp_receiver import ReceivedSpan, Receiver, running_receiver
from tools.service_process import ServiceProcess, running_service

pytestmark = pytest.mark.slow

ISSUER, AUDIENCE = "https://issuer.invalid", "items-api"
KEY = SigningKey.generate("tracing")
TOKEN = KEY.mint(issuer=ISSUER, audience=AUDIENCE, subject="tracer")
CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
SAMPLED_CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
UNSAMPLED_CALLER = f"00-{'5' * 32}-{CALLER_SPAN}-00"
# A latency bucket's line in OpenMetrics, with its exemplar's trace id.
EXEMPLAR = r'http_request_duration_seconds_bucket\{[^}]*\} \S+ # \{trace_id="(\w+)"\}'
# Spans leave a worker every 100 ms instead of every 5 s.
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture
def auth_env(tmp_path: Path) -> dict[str, str]:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(jwks(KEY)))
    return {"AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_JWKS_FILE": str(keys)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def call(
    service: ServiceProcess, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        service.base_url + path, data=data, method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                 **{name.replace("_", "-"): value for name, value in headers.items()}},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def log_entries(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.lines if line.startswith("{")]


def access_line(service: ServiceProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in log_entries(service):
            if entry.get("logger") == "gunicorn.access" and entry["request_id"] == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def server_span(receiver: Receiver, trace_id: str, name: str) -> ReceivedSpan:
    found = receiver.wait_for(
        lambda s: s.trace_id == trace_id and s.kind == "SERVER" and s.name == name
    )
    assert len(found) == 1, (name, [s.name for s in receiver.trace(trace_id)])
    return found[0]


def children(receiver: Receiver, parent: ReceivedSpan, count: int) -> list[ReceivedSpan]:
    """The spans under `parent`, once `count` have arrived (they end before it, but a
    batch may split them)."""
    deadline = time.monotonic() + 10
    while True:
        found = [s for s in receiver.trace(parent.trace_id) if s.parent_span_id == parent.span_id]
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(found, key=lambda s: s.start_ns)
        time.sleep(0.05)


def test_a_request_and_its_statements_in_the_callers_trace(
    database_url: str, auth_env: dict[str, str], receiver: Receiver
) -> None:
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1", **auth_env, **FAST_EXPORT,
           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "items-test",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test,team=platform",
           }  # fmt: skip
    tag = f"tag-{time.time_ns()}"
    name = f"traced-{time.time_ns()}"
    with running_service(env) as service:
        assert call(service, "POST", "/api/v1/tags", {"name": tag})[0] == 201
        # One statement (issue 26): the item, its tag names and its links, in autocommit.
        status, _, body = call(
            service, "POST", "/api/v1/items", {"name": name, "tags": [tag]},
            traceparent=SAMPLED_CALLER, X_Request_ID="traced-post",
        )  # fmt: skip
        assert status == 201, body
        item_id = json.loads(body)["id"]
        status, _, _ = call(service, "GET", f"/api/v1/items/{item_id}",
                            traceparent=f"00-{'1' * 32}-{CALLER_SPAN}-01")  # fmt: skip
        assert status == 200
        missing = call(service, "GET", "/api/v1/items/999999999",
                       traceparent=f"00-{'2' * 32}-{CALLER_SPAN}-01")  # fmt: skip
        assert missing[0] == 404
        # A PATCH of its tags is one transaction (the item's row locked, its links and tag
        # names replaced), which ends with a COMMIT.
        patched = call(service, "PATCH", f"/api/v1/items/{item_id}",
                       {"description": "patched", "tags": [tag]},
                       traceparent=f"00-{'6' * 32}-{CALLER_SPAN}-01")  # fmt: skip
        assert patched[0] == 200, patched
        # A conflict logs a record (INFO, the constraint's name) inside the request.
        conflict = call(service, "POST", "/api/v1/items", {"name": name},
                        traceparent=f"00-{'3' * 32}-{CALLER_SPAN}-01",
                        X_Request_ID="traced-conflict")  # fmt: skip
        assert conflict[0] == 409
        post = server_span(receiver, CALLER_TRACE, "POST /api/v1/items")
        get = server_span(receiver, "1" * 32, "GET /api/v1/items/<item_id>")
        not_found = server_span(receiver, "2" * 32, "GET /api/v1/items/<item_id>")
        patch = server_span(receiver, "6" * 32, "PATCH /api/v1/items/<item_id>")
        post_line = access_line(service, "traced-post")
        conflict_span = server_span(receiver, "3" * 32, "POST /api/v1/items")
        exposition = scrape(service, openmetrics=True)
        probes = call(service, "GET", "/readyz", traceparent=f"00-{'4' * 32}-{CALLER_SPAN}-01")
        assert probes[0] == 200

    # The server span: a child of the caller's span, named by the route template.
    assert post.parent_span_id == CALLER_SPAN and post.status == "UNSET"
    assert post.attributes["http.request.method"] == "POST"
    assert post.attributes["http.route"] == "/api/v1/items"
    assert post.attributes["http.response.status_code"] == 201
    assert post.attributes["url.path"] == "/api/v1/items"
    assert post.attributes["server.port"] == service.port
    assert get.attributes["http.route"] == "/api/v1/items/<item_id>"
    assert get.attributes["url.path"] == f"/api/v1/items/{item_id}"
    assert not_found.status == "UNSET"  # a 4xx is the client's error, not the server's
    assert not_found.attributes["http.response.status_code"] == 404
    # The resource: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    assert post.resource["service.name"] == "items-test"
    assert post.resource["deployment.environment.name"] == "test"
    assert post.resource["team"] == "platform"

    # Under it, in order: the token check, the checkout, and its one statement, which
    # commits inside its own span (autocommit: no COMMIT is sent).
    steps = children(receiver, post, 3)
    assert [s.name for s in steps[:2]] == ["token check", "connection checkout"]
    statements = [s for s in steps if s.kind == "CLIENT"]
    assert len(statements) == 1, [s.name for s in statements]
    assert "INSERT INTO items" in statements[0].attributes["db.query.text"]
    assert "%(name)s" in statements[0].attributes["db.query.text"]
    # A transaction's spans: the token check, the checkout, each statement, the COMMIT.
    steps = children(receiver, patch, 5)
    assert [s.name for s in steps[:2]] == ["token check", "connection checkout"]
    in_transaction = [s for s in steps if s.kind == "CLIENT"]
    operations = [s.attributes.get("db.operation.name", s.name) for s in in_transaction]
    assert len(operations) >= 3 and operations[-1] == "COMMIT", operations
    assert "UPDATE items" in in_transaction[0].attributes["db.query.text"]
    for statement in statements + in_transaction:
        assert statement.attributes["db.system.name"] == "postgresql"
        text = statement.attributes["db.query.text"]
        assert name not in text and tag not in text, text  # parameters, never values
    (select,) = (s for s in children(receiver, get, 3) if s.kind == "CLIENT")
    assert "WHERE items.id = %(id)s" in select.attributes["db.query.text"]  # not the id
    # Probes are not traced, nor are their statements.
    assert receiver.trace("4" * 32) == []

    # The access line and the app's own records carry the request's span ids.
    assert (post_line["trace_id"], post_line["span_id"]) == (CALLER_TRACE, post.span_id)
    record = next(e for e in log_entries(service) if e.get("request_id") == "traced-conflict"
                  and e["logger"] != "gunicorn.access")  # fmt: skip
    assert (record["trace_id"], record["span_id"]) == ("3" * 32, conflict_span.span_id)

    # The latency histogram's exemplars name sampled traces, on OpenMetrics scrapes.
    exemplars = re.findall(EXEMPLAR, exposition)
    assert {CALLER_TRACE, "1" * 32} <= set(exemplars), exposition


def test_sampling_follows_the_caller_and_the_configured_sampler(
    database_url: str, auth_env: dict[str, str], receiver: Receiver
) -> None:
    """parentbased_traceidratio at 0: a sampled caller's request is traced, an unsampled
    caller's and a request without a caller are not; both still have ids in the logs."""
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1", **auth_env, **FAST_EXPORT,
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.endpoint}/v1/traces",
           "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
           "OTEL_TRACES_SAMPLER_ARG": "0"}  # fmt: skip
    with running_service(env) as service:
        assert call(service, "GET", "/api/v1/items", X_Request_ID="no-caller")[0] == 200
        assert call(service, "GET", "/api/v1/items", traceparent=UNSAMPLED_CALLER,
                    X_Request_ID="unsampled")[0] == 200  # fmt: skip
        assert call(service, "GET", "/api/v1/items", traceparent=SAMPLED_CALLER)[0] == 200
        sampled = server_span(receiver, CALLER_TRACE, "GET /api/v1/items")
        unsampled_line = access_line(service, "unsampled")
        root_line = access_line(service, "no-caller")
        exposition = scrape(service, openmetrics=True)
    assert sampled.parent_span_id == CALLER_SPAN
    assert {span.trace_id for span in receiver.spans} == {CALLER_TRACE}
    assert unsampled_line["trace_id"] == "5" * 32 and len(unsampled_line["span_id"]) == 16
    assert len(root_line["trace_id"]) == 32 and root_line["trace_id"] != CALLER_TRACE
    # Only a sampled trace is an exemplar: one the dashboard's link can open.
    assert f'trace_id="{CALLER_TRACE}"' in exposition
    assert "5" * 32 not in exposition and root_line["trace_id"] not in exposition


def test_a_5xx_is_an_error_span(auth_env: dict[str, str], receiver: Receiver) -> None:
    """The database is unreachable: 503, and only then is the server span's status ERROR."""
    nowhere = f"postgresql://app:pw@127.0.0.1:{free_port()}/app"
    env = {"DATABASE_URL": nowhere, "GUNICORN_WORKERS": "1", "DB_CONNECT_TIMEOUT": "1",
           **auth_env, **FAST_EXPORT, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}  # fmt: skip
    with running_service(env) as service:
        status = call(service, "GET", "/api/v1/items/1", traceparent=SAMPLED_CALLER)[0]
        span = server_span(receiver, CALLER_TRACE, "GET /api/v1/items/<item_id>")
    assert status == 503
    assert span.status == "ERROR" and span.attributes["http.response.status_code"] == 503


@pytest.mark.parametrize("collector", ["down", "slow"])
def test_a_collector_down_or_slow_costs_requests_nothing(
    database_url: str, auth_env: dict[str, str], collector: str
) -> None:
    """Every request answered; the spans that could not go are counted, and a stopping
    worker still exits in time (its flush is bounded by the graceful timeout)."""
    with running_receiver(delay=2.0) as slow:
        endpoint = slow.endpoint if collector == "slow" else f"http://127.0.0.1:{free_port()}"
        env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1", **auth_env,
               "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
               "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_BSP_MAX_QUEUE_SIZE": "8",
               "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4", "GUNICORN_GRACEFUL_TIMEOUT": "6"}  # fmt: skip
        with running_service(env) as service:
            statuses = [call(service, "GET", "/api/v1/items")[0] for _ in range(60)]
            dropped = wait_for_drops(service)
            # Several more batches fail (one a second at most, the export timeout): each
            # would log its retries and its failure.
            failing_until = time.monotonic() + 5
            while time.monotonic() < failing_until:
                statuses.append(call(service, "GET", "/api/v1/items")[0])
            started_stopping = time.monotonic()
        stopped_after = time.monotonic() - started_stopping
    assert set(statuses) == {200}
    assert dropped, "no dropped span was counted"
    # The failure is logged, once of a kind per minute (two kinds of ERROR: refused, and
    # out of retries or time), not once a batch.
    exporter_lines = [e for e in log_entries(service) if e.get("logger") == EXPORTER_LOGGER]
    errors = [e["message"] for e in exporter_lines if e["level"] == "ERROR"]
    assert 1 <= len(errors) <= 2, errors
    assert len(exporter_lines) - len(errors) <= 3, exporter_lines
    assert set(dropped) <= {"queue_full", "export_failed", "at_exit"}
    assert service.process.returncode == 0
    # gunicorn SIGKILLs a worker at the graceful timeout (6 s); it left before that.
    assert stopped_after < 6, stopped_after
    assert not any("WORKER TIMEOUT" in line or "SIGKILL" in line for line in service.lines)


def test_sigterm_sends_the_buffered_spans(
    database_url: str, auth_env: dict[str, str], receiver: Receiver
) -> None:
    """Spans waiting for the next batch (a minute away) are sent as the worker stops."""
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", **auth_env,
           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "60000"}  # fmt: skip
    with running_service(env) as service:
        for number in range(1, 6):
            traceparent = f"00-{number:032x}-{CALLER_SPAN}-01"
            assert call(service, "GET", "/api/v1/items", traceparent=traceparent)[0] == 200
        time.sleep(0.5)
        assert receiver.spans == []  # still buffered
    traced = {span.trace_id for span in receiver.spans if span.kind == "SERVER"}
    assert traced == {f"{number:032x}" for number in range(1, 6)}


def test_each_worker_exports_on_its_own(
    database_url: str, auth_env: dict[str, str], receiver: Receiver
) -> None:
    """Two workers, two exporters: each started after the fork (its own resource
    instance id), none in the master."""
    env = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "2", **auth_env, **FAST_EXPORT,
           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}  # fmt: skip
    with running_service(env) as service:
        instances: set[str] = set()
        deadline = time.monotonic() + 20
        while len(instances) < 2 and time.monotonic() < deadline:
            concurrent_calls(service, 8)
            time.sleep(0.3)
            instances = {s.resource["service.instance.id"] for s in receiver.spans}
    assert len(instances) == 2, instances


def test_no_endpoint_no_tracing(database_url: str, receiver: Receiver) -> None:
    """OTEL_SDK_DISABLED, or no endpoint at all: nothing is sent, ids still reach the logs
    from a valid traceparent (as before tracing existed)."""
    for env in (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SDK_DISABLED": "true"},
        {"OTEL_SERVICE_NAME": "items", "OTEL_TRACES_SAMPLER": "always_on"},
    ):
        full = {"DATABASE_URL": database_url, "GUNICORN_WORKERS": "1", **FAST_EXPORT, **env}
        with running_service(full) as service:
            status = call(service, "GET", "/api/v1/items", traceparent=SAMPLED_CALLER,
                          X_Request_ID="untraced")[0]  # fmt: skip
            line = access_line(service, "untraced")
            time.sleep(0.5)
        assert status == 200
        assert line["trace_id"] == CALLER_TRACE and "span_id" not in line
        assert not any("tracing on" in entry for entry in service.lines)
    assert receiver.requests == 0


def scrape(service: ServiceProcess, *, openmetrics: bool) -> str:
    accept = "application/openmetrics-text;version=1.0.0" if openmetrics else "text/plain"
    time.sleep(1.2)  # the flusher's second: exemplars of every worker written
    request = urllib.request.Request(f"{service.base_url}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def wait_for_drops(service: ServiceProcess, timeout: float = 20) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(service, openmetrics=False)
        dropped = {
            match[0]: float(match[1])
            for match in re.findall(r'tracing_spans_dropped_total\{reason="(\w+)"\} (\S+)', text)
        }
        if dropped or time.monotonic() > deadline:
            return dropped
        call(service, "GET", "/api/v1/items")


def concurrent_calls(service: ServiceProcess, count: int) -> None:
    import threading

    threads = [threading.Thread(target=call, args=(service, "GET", "/api/v1/items"))
               for _ in range(count)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_untraced_connection_when_off(database_url: str) -> None:
    """Without an endpoint the app is built exactly as before: no middleware, psycopg's
    connect unwrapped, no tracer provider."""
    from opentelemetry import trace

    from service import create_app
    from service.config import Settings
    from service.telemetry.tracing import TracedRequests

    app = create_app(Settings.from_env({"DATABASE_URL": database_url, "APP_ENV": "dev"}))
    layer: Any = app.wsgi_app
    while layer is not None:
        assert not isinstance(layer, TracedRequests)
        layer = getattr(layer, "app", None)
    assert not hasattr(psycopg.connect, "__wrapped__")
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
