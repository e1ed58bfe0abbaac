"""The kind node image, assembled the way `kind build node-image` does, from local parts.

kind's own builder (pkg/build/nodeimage/buildcontext.go) runs the base image, copies
kubeadm, kubelet and kubectl to /usr/bin, writes /kind/version and the default CNI and
storage manifests, imports the control plane images into the node's containerd, pulls
every other image it needs (etcd, CoreDNS, pause, kindnetd, local-path) from registries,
and commits the container. Our machines reach no registry, so this does the same with
every image built here, and `ctr images tag`s each under the name the node expects.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tools.from_source import cache
from tools.from_source.images import REPOSITORY_PREFIX, Image, ImageBuildError, image_id

Log = Callable[[str], None]
NODE_BINARIES = ("kubeadm", "kubelet", "kubectl")
CTR = ("ctr", "--namespace=k8s.io")
# kind's node entrypoint; its builder sets the same when it commits.
ENTRYPOINT = 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]'


@dataclass(frozen=True)
class NodeParts:
    base: Image
    kubernetes_version: str
    binaries: Mapping[str, Path]  # kubeadm, kubelet, kubectl
    images: Mapping[str, Image]  # name inside the node -> image built here
    files: Mapping[str, str]  # path inside the node -> content


def node_tag(parts: NodeParts) -> str:
    strings = [parts.base.tag, parts.kubernetes_version]
    strings += [f"{name}={image.tag}" for name, image in sorted(parts.images.items())]
    strings += [f"{path}\0{text}" for path, text in sorted(parts.files.items())]
    binaries = sorted(parts.binaries.items())
    return (
        f"{REPOSITORY_PREFIX}/kind-node:{parts.kubernetes_version}-{cache.key(strings, binaries)}"
    )


def _run(
    argv: list[str],
    *,
    stdin: IO[bytes] | None = None,
    data: bytes | None = None,
    timeout: float = 600,
) -> str:
    result = subprocess.run(
        argv, stdin=stdin, input=data, capture_output=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise ImageBuildError(f"`{' '.join(argv[:6])} ...` failed: {detail[-2000:]}")
    return str(result.stdout.decode(errors="replace"))


def ensure(docker: str, parts: NodeParts, *, log: Log = print) -> Image:
    tag = node_tag(parts)
    if image_id(docker, tag):
        log(f"node image {tag}: reusing")
        return Image(tag, 0.0)
    started = time.monotonic()
    log(f"node image {tag}: assembling from {parts.base.tag}")
    container = f"from-source-node-build-{int(time.time())}"
    # Not privileged (as kind's builder): containerd only imports content, unpacks nothing.
    _run(
        [docker, "run", "-d", "--name", container, "--entrypoint=sleep", parts.base.tag, "infinity"]
    )
    try:
        _assemble(docker, container, parts, log)
        _run([docker, "commit", "--change", ENTRYPOINT, container, tag])
    finally:
        subprocess.run([docker, "rm", "-f", "-v", container], capture_output=True, check=False)
    seconds = time.monotonic() - started
    log(f"node image {tag}: built in {seconds:.0f}s")
    return Image(tag, seconds)


def _assemble(docker: str, container: str, parts: NodeParts, log: Log) -> None:
    def node(
        *argv: str, stdin: IO[bytes] | None = None, data: bytes | None = None, timeout: float = 600
    ) -> str:
        return _run(
            [docker, "exec", "-i", container, *argv], stdin=stdin, data=data, timeout=timeout
        )

    for name in NODE_BINARIES:
        _run([docker, "cp", str(parts.binaries[name]), f"{container}:/usr/bin/{name}"])
        node("chown", "root:root", f"/usr/bin/{name}")
        node("chmod", "0755", f"/usr/bin/{name}")
    for path, text in {"/kind/version": parts.kubernetes_version, **parts.files}.items():
        node("mkdir", "-p", str(Path(path).parent))
        node("sh", "-c", f"cat > {path}", data=text.encode())

    node("sh", "-c", "nohup containerd >/tmp/containerd.log 2>&1 &")
    deadline = time.monotonic() + 60
    while subprocess.run(
        [docker, "exec", container, *CTR, "version"], capture_output=True, check=False
    ).returncode:
        if time.monotonic() > deadline:
            raise ImageBuildError("containerd did not start in the node build container")
        time.sleep(0.5)
    for name, image in sorted(parts.images.items()):
        log(f"node image: importing {image.tag} as {name}")
        save = subprocess.Popen([docker, "save", image.tag], stdout=subprocess.PIPE)
        try:
            # As kind's importer: content only, unpacked by the node's containerd at first use.
            node(
                *CTR,
                "images",
                "import",
                "--all-platforms",
                "--no-unpack",
                "-",
                stdin=save.stdout,
                timeout=900,
            )
        finally:
            if save.stdout is not None:
                save.stdout.close()
            if save.wait() != 0:
                raise ImageBuildError(f"`docker save {image.tag}` failed")
        node(*CTR, "images", "tag", "--force", f"docker.io/{image.tag}", name)
        node(*CTR, "images", "rm", f"docker.io/{image.tag}")
    node("sh", "-c", "pkill containerd; sleep 1; rm -f /tmp/containerd.log")
