"""The images run as the non-root UID, and nothing the build was handed in secret (the CA
bundle pip used behind the proxy) is in any layer the Dockerfile adds, in the image
config or in `docker history`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from tests.image.conftest import BuiltImages
from tests.image.imagelib import RUNTIME_GID, RUNTIME_UID, check, inspect

pytestmark = pytest.mark.docker

PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)
SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_KEY$|^PIP_CERT$|CERT", re.I)


def certificate_bodies(pem: bytes) -> set[bytes]:
    """The base64 body of every certificate, whitespace removed (how it would be found)."""
    return {re.sub(rb"\s+", b"", body) for body in PEM_BLOCK.findall(pem)}


def added_layers(docker: str, image: str) -> Iterator[tuple[str, tarfile.TarFile]]:
    """(layer digest, layer tar) for each layer the Dockerfile added on top of its base."""
    config = inspect(docker, image)
    base = config["Config"]["Labels"]["org.opencontainers.image.base.name"]
    base_layers = inspect(docker, base)["RootFS"]["Layers"]
    layers = config["RootFS"]["Layers"]
    assert layers[: len(base_layers)] == base_layers, "the image is not built on its base"
    wanted = set(layers[len(base_layers) :]) - set(base_layers)
    seen = set()
    with subprocess.Popen([docker, "save", image], stdout=subprocess.PIPE) as save:
        assert save.stdout is not None
        with tarfile.open(fileobj=save.stdout, mode="r|") as saved:
            for member in saved:
                if not (member.isfile() and member.name.endswith("layer.tar")):
                    continue
                extracted = saved.extractfile(member)
                assert extracted is not None
                content = extracted.read()
                # A layer's diff id is the digest of its uncompressed tar.
                digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
                if digest in wanted:
                    seen.add(digest)
                    with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as layer:
                        yield digest, layer
    assert seen == wanted, "`docker save` did not contain every added layer"


@pytest.mark.parametrize("target", ["runtime", "dev"])
def test_processes_run_as_the_non_root_uid(docker: str, images: BuiltImages, target: str) -> None:
    image = getattr(images, target)
    assert inspect(docker, image)["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_GID}"
    out = check(
        [docker, "run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python",
         image, "-c", "import os; print(os.getuid(), os.getgid(), os.geteuid())"]
    )  # fmt: skip
    assert out.split() == [str(RUNTIME_UID), str(RUNTIME_GID), str(RUNTIME_UID)]


@pytest.mark.parametrize("target", ["runtime", "dev"])
def test_the_build_secret_is_in_no_layer_config_or_history(
    docker: str, images: BuiltImages, target: str
) -> None:
    image = getattr(images, target)
    bundle = Path(images.ca_bundle).read_bytes()
    assert certificate_bodies(bundle), f"{images.ca_bundle} holds no certificate to look for"
    # certifi (the runtime's `requests`, which the OTLP span exporter sends with) ships
    # Mozilla's public roots, which a system bundle holds too: those are no secret. Any
    # other certificate of the bundle (a proxy's own CA) must be nowhere in the image.
    public = certificate_bodies(Path(certifi.where()).read_bytes())
    secret_certificates = certificate_bodies(bundle) - public
    bundle_digest = hashlib.sha256(bundle).hexdigest()

    files_seen = 0
    found: list[str] = []
    for layer, tar in added_layers(docker, image):
        for member in tar:
            if member.name.startswith("run/secrets"):
                found.append(f"{layer}: {member.name} (the secret's mount point)")
            if not member.isfile():
                continue
            files_seen += 1
            extracted = tar.extractfile(member)
            assert extracted is not None
            content = extracted.read()
            if hashlib.sha256(content).hexdigest() == bundle_digest:
                found.append(f"{layer}: {member.name} is the CA bundle")
            elif b"BEGIN CERTIFICATE" in content and (
                certificate_bodies(content) & secret_certificates
            ):
                found.append(f"{layer}: {member.name} holds a certificate of the bundle")
    assert files_seen > 100, "the scan saw too few files to mean anything"
    assert found == []

    history = check([docker, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image])
    config = json.dumps(inspect(docker, image)["Config"])
    for text, where in ((history, "docker history"), (config, "the image config")):
        flat = re.sub(r"\s+", "", text).encode()
        assert b"BEGINCERTIFICATE" not in flat, where
        assert not any(body[:64] in flat for body in secret_certificates), where
    env_names = [item.split("=", 1)[0] for item in inspect(docker, image)["Config"]["Env"]]
    assert [name for name in env_names if SECRET_ENV_NAME.search(name)] == []
