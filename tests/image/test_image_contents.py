"""What the two images contain: only the virtualenv and the code on top of the base, no
build tools, no pip cache, no tests, root-owned code in production, writable code in dev.
"""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from tests.image.conftest import BuiltImages
from tests.image.imagelib import (
    HARDENED,
    RUNTIME_GID,
    RUNTIME_UID,
    check,
    exported_files,
    inspect,
)

pytestmark = pytest.mark.docker

WRITABLE_PATHS = ("tmp/", "run/metrics/")
# Compilers, linkers and build tools, also Debian's triplet-prefixed and versioned names.
BUILD_TOOL = re.compile(
    r"^(usr/(local/)?)?s?bin/([\w.-]+-)?(gcc|g\+\+|cc|c\+\+|cpp|clang|ld|as|strip|make)"
    r"(-[\d.]+|\.bfd|\.gold)?$"
)


def filesystem(docker: str, image: str) -> dict[str, tarfile.TarInfo]:
    return {entry.name.rstrip("/"): entry for entry in exported_files(docker, image)}


@pytest.fixture(scope="module")
def runtime_files(docker: str, images: BuiltImages) -> dict[str, tarfile.TarInfo]:
    return filesystem(docker, images.runtime)


@pytest.fixture(scope="module")
def dev_files(docker: str, images: BuiltImages) -> dict[str, tarfile.TarInfo]:
    return filesystem(docker, images.dev)


def test_runtime_has_no_compiler_or_build_tool(runtime_files: dict[str, tarfile.TarInfo]) -> None:
    assert [path for path in runtime_files if BUILD_TOOL.match(path)] == []


def test_runtime_has_no_pip_cache_and_no_pip_in_the_virtualenv(
    runtime_files: dict[str, tarfile.TarInfo],
) -> None:
    assert [path for path in runtime_files if "/.cache/pip" in f"/{path}"] == []
    assert [path for path in runtime_files if path.startswith("root/.cache")] == []
    pip_in_venv = re.compile(r"opt/venv/(bin/pip|lib/[^/]+/site-packages/pip(/|$))")
    venv_pip = [path for path in runtime_files if pip_in_venv.match(path)]
    assert venv_pip == [], "the runtime installs nothing: pip is removed from the virtualenv"


def test_runtime_app_holds_only_the_service_code(runtime_files: dict[str, tarfile.TarInfo]) -> None:
    top_level = {p.split("/")[1] for p in runtime_files if p.startswith("app/") and p != "app"}
    assert top_level == {"alembic.ini", "migrations", "service"}
    test_file = re.compile(r"^app/(.+/)?(tests?|conftest\.py|test_[^/]*\.py)$")
    tests = [path for path in runtime_files if test_file.match(path)]
    assert tests == []
    # Only the runtime lock is installed: none of the dev toolset. (`requests` is in the
    # runtime lock since issue 28: the OTLP/HTTP span exporter sends with it.)
    site = [p for p in runtime_files if re.match(r"opt/venv/lib/[^/]+/site-packages/[^/]+$", p)]
    names = {p.rsplit("/", 1)[1].split("-")[0].lower() for p in site}
    assert names.isdisjoint({"pytest", "ruff", "mypy", "hypothesis", "schemathesis"})
    assert {"flask", "gunicorn", "sqlalchemy", "psycopg", "alembic", "opentelemetry"} <= names


def test_runtime_user_owns_nothing_outside_the_writable_paths(
    runtime_files: dict[str, tarfile.TarInfo],
) -> None:
    owned = [
        path
        for path, entry in runtime_files.items()
        if (entry.uid == RUNTIME_UID or entry.gid == RUNTIME_GID)
        and not f"{path}/".startswith(WRITABLE_PATHS)
    ]
    assert owned == []
    # Nothing the app user could write through "other" permissions either, except the
    # sticky scratch directories.
    world_writable = [
        path
        for path, entry in runtime_files.items()
        if entry.mode & 0o002 and not entry.issym() and not entry.mode & 0o1000
        and not path.startswith(("dev/", "proc/", "sys/"))
    ]  # fmt: skip
    assert world_writable == []
    metrics = runtime_files["run/metrics"]
    assert metrics.isdir() and metrics.mode & 0o1777 == 0o1777


BYTECODE_CHECK = """
import importlib.util, json, pathlib, sys, sysconfig
import gunicorn.app.wsgiapp, gunicorn.workers.sync, alembic.command
import service.__main__, service.runtime.gunicorn_conf, service.wsgi

def current(source):
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    head = cached.read_bytes()[:16] if cached.exists() else b""
    st = pathlib.Path(source).stat()
    return (head[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(head[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(head[12:16], "little") == st.st_size & 0xFFFFFFFF)

sources = {str(p) for root in ("/app", sysconfig.get_path("purelib"))
           for p in pathlib.Path(root).rglob("*.py")}
# The standard library modules a start loads, whatever the base image ships.
sources |= {m.__file__ for m in list(sys.modules.values())
            if (getattr(m, "__file__", None) or "").endswith(".py")}
print(json.dumps(sorted(s for s in sources if not current(s))))
"""


def test_runtime_code_and_dependencies_are_byte_compiled(docker: str, images: BuiltImages) -> None:
    """Every .py the image holds or a start imports has a current .pyc, so a read-only root
    filesystem compiles nothing at start."""
    out = check(
        [docker, "run", "--rm", *HARDENED, "--network", "none",
         "--env", "DATABASE_URL=postgresql://test:unused@127.0.0.1:9/test",
         "--env", "AUTH_ISSUER=https://issuer.invalid", "--env", "AUTH_AUDIENCE=test",
         "--entrypoint", "/opt/venv/bin/python", images.runtime, "-c", BYTECODE_CHECK]
    )  # fmt: skip
    assert json.loads(out.splitlines()[-1]) == []


def test_runtime_image_config(docker: str, images: BuiltImages) -> None:
    config = inspect(docker, images.runtime)["Config"]
    assert config["User"] == f"{RUNTIME_UID}:{RUNTIME_GID}"
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "service"]
    assert config["Cmd"] == ["serve"]
    assert config["WorkingDir"] == "/app"
    assert "8000/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/metrics"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PORT"] == "8000"
    assert "APP_ENV" not in env  # production is the service's own default
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == images.revision
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", labels["org.opencontainers.image.version"])
    assert "org.opencontainers.image.source" in labels
    assert labels["org.opencontainers.image.base.name"]


def test_dev_image_code_is_writable_by_the_app_user_and_tar_is_present(
    docker: str, images: BuiltImages, dev_files: dict[str, tarfile.TarInfo]
) -> None:
    app = {path: entry for path, entry in dev_files.items() if f"{path}/".startswith("app/")}
    assert "app/service/__main__.py" in app
    assert {(e.uid, e.gid) for e in app.values()} == {(RUNTIME_UID, RUNTIME_GID)}
    # Skaffold's file sync runs `tar` in the container.
    assert {"bin/tar", "usr/bin/tar"} & dev_files.keys()
    config = inspect(docker, images.dev)["Config"]
    assert config["User"] == f"{RUNTIME_UID}:{RUNTIME_GID}"
    assert config["Cmd"] == ["dev"]
    assert "APP_ENV=dev" in config["Env"]


def test_dev_and_runtime_share_the_dependency_layers(docker: str, images: BuiltImages) -> None:
    """Dependencies come before code, and the dev image reuses production's layers."""
    runtime_layers = inspect(docker, images.runtime)["RootFS"]["Layers"]
    dev_layers = inspect(docker, images.dev)["RootFS"]["Layers"]
    shared = 0
    for runtime_layer, dev_layer in zip(runtime_layers, dev_layers, strict=False):
        if runtime_layer != dev_layer:
            break
        shared += 1
    # Only production's last two layers differ: the code copy and its bytecode warm-up.
    assert len(runtime_layers) - shared <= 2
