"""The production image as it runs in production: read-only root, no capabilities, no
privilege escalation, tmpfs for /tmp and the metrics directory, a real PostgreSQL.
`migrate` brings the schema to head, then the default command serves it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.conftest import PostgresServer
from tests.image.conftest import BuiltImages
from tests.image.imagelib import Container, check, container, json_lines, run_once
from tests.scrape import scrape_until
from tools.otlp_receiver import running_receiver

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.database_url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def migrate_output(docker: str, images: BuiltImages, database: str) -> str:
    result = run_once(docker, images.runtime, "migrate", env={"DATABASE_URL": database})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"migrate failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def server(
    docker: str, images: BuiltImages, database: str, migrate_output: str
) -> Iterator[Container]:
    # No command: the image's default (`serve`) is what a Deployment runs.
    with container(docker, images.runtime, env={"DATABASE_URL": database}) as running:
        running.wait_ready()
        yield running


def test_migrate_applies_the_migrations_and_exits(migrate_output: str) -> None:
    messages = [record["message"] for record in json_lines(migrate_output)]
    assert any("Running upgrade" in message for message in messages), messages
    # At the revision this code needs; its contract steps wait for `migrate --contract`.
    assert any(m.startswith("migrations applied: database is at ") for m in messages), messages


def test_readyz_reports_the_schema_current(server: Container) -> None:
    response = requests.get(f"{server.url}/readyz", timeout=5)
    assert response.status_code == 200
    assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200


def test_the_api_works(server: Container) -> None:
    created = requests.post(
        f"{server.url}/api/v1/items",
        json={"name": "from the image test", "description": "read-only root"},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    fetched = requests.get(f"{server.url}/api/v1/items/{item['id']}", timeout=5)
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "from the image test"
    listed = requests.get(f"{server.url}/api/v1/items", timeout=5)
    assert item["id"] in [entry["id"] for entry in listed.json()["items"]]
    # The multiprocess metrics directory (a tmpfs) is writable: requests are counted.
    counted = scrape_until(f"{server.url}/metrics", lambda text: 'route="/api/v1/items"' in text)
    assert 'route="/api/v1/items"' in counted


def test_gunicorn_is_pid_1_as_the_app_user(docker: str, server: Container) -> None:
    probe = (
        "import os; print(open('/proc/1/cmdline').read().replace(chr(0), ' ')); print(os.getuid())"
    )
    cmdline, uid = check(
        [docker, "exec", server.id, "/opt/venv/bin/python", "-c", probe]
    ).splitlines()
    assert "gunicorn" in cmdline
    assert uid == "10001"


def test_logs_are_json_with_no_errors(server: Container) -> None:
    requests.get(f"{server.url}/api/v1/items", headers={"X-Request-ID": "image-test-1"}, timeout=5)
    records = json_lines(server.logs_with_access_line("image-test-1"))
    assert records, "the server wrote no logs"
    for record in records:
        assert {"time", "level", "message"} <= record.keys(), record
    errors = [r for r in records if r["level"] in {"ERROR", "CRITICAL"}]
    assert errors == [], "a clean start and normal requests must log no errors"
    access = [r for r in records if r.get("request_id") == "image-test-1"]
    assert access and access[0]["status"] == 200


def test_the_image_sends_traces(docker: str, images: BuiltImages, database: str) -> None:
    """The image carries the OpenTelemetry SDK, exporter and instrumentations: with an
    endpoint, a request's spans reach a real OTLP/HTTP receiver, from a read-only root."""
    with running_receiver() as receiver:
        env = {"DATABASE_URL": database, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
               "OTEL_SERVICE_NAME": "image-test", "OTEL_BSP_SCHEDULE_DELAY": "100"}  # fmt: skip
        with container(docker, images.runtime, env=env) as running:
            running.wait_ready()
            traceparent = f"00-{'7' * 32}-{'8' * 16}-01"
            response = requests.get(
                f"{running.url}/api/v1/items", headers={"traceparent": traceparent}, timeout=5
            )
            assert response.status_code == 200
            spans = receiver.wait_for(lambda s: s.trace_id == "7" * 32 and s.kind == "SERVER")
            logs = running.logs()
    assert [s.name for s in spans] == ["GET /api/v1/items"], logs
    assert spans[0].resource["service.name"] == "image-test"
    assert any(s.kind == "CLIENT" for s in receiver.trace("7" * 32))
