"""The dev image picks up a changed .py file without a container restart.

The file is copied in the way Skaffold's file sync does it: a tar stream unpacked by
`tar` inside the running container, as the container's user, over the code in /app.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid

import pytest
import requests
from requests.exceptions import ChunkedEncodingError

from tests.image.conftest import ROOT, BuiltImages
from tests.image.imagelib import container, inspect, run

pytestmark = pytest.mark.docker

RELOAD_TIMEOUT_S = 30
PROBE_PATH = "/hot-reload-probe"


def changed_app_factory(marker: str) -> bytes:
    """service/__init__.py with create_app() wrapped to add one route that answers `marker`."""
    original = (ROOT / "service" / "__init__.py").read_text()
    addition = f'''

_create_app_before_the_change = create_app


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    app = _create_app_before_the_change(*args, **kwargs)
    app.add_url_rule("{PROBE_PATH}", "hot_reload_probe", lambda: {{"marker": "{marker}"}})
    return app
'''
    return (original + addition).encode()


def tar_of(path: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size = len(content)
        info.mtime = int(time.time()) + 1  # newer than anything the reloader has seen
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_a_synced_py_file_is_served_without_restarting_the_container(
    docker: str, images: BuiltImages, empty_database: str
) -> None:
    marker = uuid.uuid4().hex
    env = {"DATABASE_URL": empty_database}
    # The dev loop does not run read-only: /app is meant to change.
    with container(docker, images.dev, env=env, options=("--cap-drop", "ALL")) as dev:
        dev.wait_ready("/livez")
        assert requests.get(dev.url + PROBE_PATH, timeout=5).status_code == 404
        started = dev.state()["StartedAt"]

        synced = run(
            [docker, "exec", "--interactive", dev.id, "tar", "-x", "-C", "/app", "-f", "-"],
            stdin=tar_of("service/__init__.py", changed_app_factory(marker)),
        )
        assert synced.returncode == 0, f"tar in the container failed: {synced.stderr}"

        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        answer = None
        while time.monotonic() < deadline:
            try:
                response = requests.get(dev.url + PROBE_PATH, timeout=2)
                if response.status_code == 200:
                    answer = response.json()
                    break
            except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError):
                # The reloader is restarting the server process: refused while it is
                # down, slow to answer while the new one imports (a busy machine), and an
                # answer the old one had begun is cut off when it stops.
                pass
            time.sleep(0.2)
        logs = dev.logs()
        details = inspect(docker, dev.id, "container")

    assert answer == {"marker": marker}, f"the change was not served:\n{logs}"
    assert details["State"]["Running"], "the container stopped"
    assert details["State"]["StartedAt"] == started, "the container was restarted"
    assert details["RestartCount"] == 0
