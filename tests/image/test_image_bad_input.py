"""Bad input to the container: a missing or malformed DATABASE_URL ends the process with one
clear JSON log line and a non-zero exit (no stack traces for a crash loop to repeat); an
unknown command prints usage.
"""

from __future__ import annotations

import pytest

from tests.image.conftest import BuiltImages
from tests.image.imagelib import HARDENED, json_lines, run_once

pytestmark = pytest.mark.docker

BAD_DATABASE_URLS = {
    "missing": None,
    "empty": "",
    "not-a-url": "localhost:5432/app",
    "not-postgresql": "mysql://app:secret@127.0.0.1:3306/app",
}


@pytest.mark.parametrize("command", ["serve", "migrate"])
@pytest.mark.parametrize("case", list(BAD_DATABASE_URLS))
def test_bad_database_url_is_one_clear_line_and_a_failed_exit(
    docker: str, images: BuiltImages, command: str, case: str
) -> None:
    value = BAD_DATABASE_URLS[case]
    env = {} if value is None else {"DATABASE_URL": value}
    result = run_once(docker, images.runtime, command, env=env, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    records = json_lines(output)
    assert len(records) == 1, f"expected one log line, got:\n{output}"
    (record,) = records
    assert record["level"] in {"ERROR", "CRITICAL"}
    assert "DATABASE_URL" in record["message"]
    assert "Traceback" not in output
    assert "secret" not in output, "the URL's password must not be logged"


def test_unknown_command_prints_usage(docker: str, images: BuiltImages) -> None:
    result = run_once(docker, images.runtime, "serv", timeout=60)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    for command in ("serve", "migrate", "wait-for-schema", "dev"):
        assert command in result.stderr
    assert "Traceback" not in result.stderr


def test_the_production_image_cannot_run_the_debugger(docker: str, images: BuiltImages) -> None:
    """Even with every switch forced, `dev` refuses, and the debugger is not importable."""
    env = {"APP_ENV": "dev", "DEBUG": "true", "DATABASE_URL": "postgresql://a:b@127.0.0.1:9/x"}
    result = run_once(docker, images.runtime, "dev", env=env, timeout=60)
    assert result.returncode == 2
    (record,) = json_lines(result.stdout + result.stderr)
    assert "development image" in record["message"]
    python = (*HARDENED, "--entrypoint", "/opt/venv/bin/python")
    importer = ("-c", "import werkzeug.debug")
    runtime = run_once(docker, images.runtime, *importer, options=python, timeout=60)
    assert runtime.returncode != 0 and "No module named 'werkzeug.debug'" in runtime.stderr
    dev = run_once(docker, images.dev, *importer, options=python, timeout=60)
    assert dev.returncode == 0, dev.stderr
