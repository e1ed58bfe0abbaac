"""What an OCI registry holds: reachability, a tag's digest and labels (through skopeo)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field

# host[:port] then optional lowercase path components, as `docker push` accepts them.
_REGISTRY = re.compile(
    r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?)"
    r"(?P<namespace>(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)$"
)
# What skopeo says when the repository or the tag is simply not there (distribution,
# GHCR, Docker Hub, Harbor wordings).
_NOT_FOUND = re.compile(r"manifest unknown|name unknown|not found|404", re.IGNORECASE)
SKOPEO_TIMEOUT_S = 120


class ReleaseError(Exception):
    """A refusal or failure a person fixes: the message says what and how, in one line."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: the registries docker itself speaks plain HTTP to."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RemoteImage:
    digest: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    """REGISTRY=host[:port]/namespace: where the image and the chart are pushed."""

    host: str
    namespace: str
    skopeo: str = "skopeo"

    @classmethod
    def parse(cls, value: str, *, skopeo: str = "skopeo") -> Registry:
        if not value:
            raise ReleaseError(
                "REGISTRY is required: `make release REGISTRY=<host[:port]/namespace> "
                "VERSION=<semver>`, e.g. REGISTRY=ghcr.io/my-org"
            )
        match = _REGISTRY.match(value.strip().removeprefix("oci://").rstrip("/"))
        if match is None:
            raise ReleaseError(
                f"REGISTRY={value!r} is not host[:port]/namespace (lowercase path, no scheme, "
                "no tag), e.g. REGISTRY=ghcr.io/my-org or REGISTRY=127.0.0.1:5000/team"
            )
        return cls(match["host"], match["namespace"].lstrip("/"), skopeo)

    @property
    def address(self) -> str:
        return f"{self.host}/{self.namespace}" if self.namespace else self.host

    @property
    def plain_http(self) -> bool:
        return is_loopback(self.host)

    def repository(self, name: str) -> str:
        return f"{self.address}/{name}"

    def check_reachable(self, timeout_s: float = 10) -> None:
        """Any HTTP answer from /v2/ (401 included: it wants a login) means a registry."""
        scheme = "http" if self.plain_http else "https"
        url = f"{scheme}://{self.host}/v2/"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s):  # noqa: S310 (http/https only)
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReleaseError(
                f"registry {self.host} is unreachable ({url}: {reason}); start it or fix "
                "REGISTRY (plain HTTP is used only for 127.0.0.0/8 and localhost)"
            ) from None

    def _skopeo(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Raw bytes: a manifest's digest is the hash of exactly what the registry sent."""
        tls = ["--tls-verify=false"] if self.plain_http else []
        try:
            return subprocess.run(
                [self.skopeo, args[0], *tls, *args[1:]],
                capture_output=True, timeout=SKOPEO_TIMEOUT_S, check=False,
            )  # fmt: skip
        except FileNotFoundError:
            raise ReleaseError(
                f"`{self.skopeo}` not found: install skopeo (apt-get install skopeo) "
                "or point SKOPEO at it"
            ) from None

    def _missing_or_fail(self, proc: subprocess.CompletedProcess[bytes], ref: str) -> None:
        if proc.returncode == 0:
            return
        stderr = proc.stderr.decode(errors="replace")
        if _NOT_FOUND.search(stderr):
            return
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        raise ReleaseError(f"skopeo could not read {ref}: {last[0]}")

    def image(self, name: str, tag: str) -> RemoteImage | None:
        """The image `name:tag` in this registry, or None when the tag is not there."""
        ref = f"{self.repository(name)}:{tag}"
        proc = self._skopeo("inspect", f"docker://{ref}")
        self._missing_or_fail(proc, ref)
        if proc.returncode != 0:
            return None
        data = json.loads(proc.stdout)
        return RemoteImage(digest=data["Digest"], labels=dict(data.get("Labels") or {}))

    def manifest_digest(self, name: str, tag: str) -> str | None:
        """Digest of any artifact's manifest (a Helm chart too), or None when absent."""
        ref = f"{self.repository(name)}:{tag}"
        proc = self._skopeo("inspect", "--raw", f"docker://{ref}")
        self._missing_or_fail(proc, ref)
        if proc.returncode != 0:
            return None
        # The registry names a manifest by the sha256 of its exact bytes.
        return "sha256:" + hashlib.sha256(proc.stdout).hexdigest()
