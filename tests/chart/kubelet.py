"""Run a rendered pod spec's containers under Docker the way a kubelet would: the same
image, command and args, env resolved from the rendered ConfigMaps and Secrets, the
same user and groups, read-only root, capabilities dropped, emptyDirs as tmpfs, secret
volumes as read-only files, resource limits; and call HTTP probes as declared.

Where Docker differs from a kubelet, it is stricter, so a pass here carries over:
- pods share the host's network (a kubelet gives each pod its own IP; here the pod's
  "IP" is 127.0.0.1), so the database on 127.0.0.1 is reachable as it would be by address;
- a tmpfs over a directory that exists in the image takes that directory's mode, where a
  kubelet's emptyDir is always world-writable.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|k|M|G)?$")
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity_bytes(value: str | int) -> int:
    match = QUANTITY.match(str(value))
    assert match, f"unsupported quantity {value!r}"
    return int(float(match[1]) * BINARY.get(match[2] or "", 1))


def quantity_cpus(value: str | int) -> float:
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


@dataclass
class Pod:
    """One pod's spec plus the ConfigMaps and Secrets (name -> data) it may reference."""

    name: str
    spec: Obj
    config_maps: Mapping[str, Mapping[str, str]]
    secrets: Mapping[str, Mapping[str, str]]
    docker: str
    workdir: Path
    started: list[str] = field(default_factory=list)

    def env(self, container: Obj) -> dict[str, str]:
        """envFrom first, then env (which wins), as the kubelet orders them."""
        result = {"HOSTNAME": self.name}
        if self.spec.get("enableServiceLinks", True):
            raise AssertionError("service links would inject <SERVICE>_* variables")
        for source in container.get("envFrom", []):
            ref = source["configMapRef"]["name"]
            assert ref in self.config_maps, f"envFrom names missing ConfigMap {ref}"
            result.update(self.config_maps[ref])
        for entry in container.get("env", []):
            if "value" in entry:
                result[entry["name"]] = entry["value"]
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                result[entry["name"]] = self.secrets[ref["name"]][ref["key"]]
        return result

    def _volume_args(self, container: Obj) -> list[str]:
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        args = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            path = mount["mountPath"]
            if "emptyDir" in volume:
                # The kubelet makes an emptyDir world-writable and hands its group to fsGroup.
                size = quantity_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
                owner = f",uid=0,gid={fs_group}" if fs_group is not None else ""
                args += ["--tmpfs", f"{path}:rw,exec,size={size},mode=0777{owner}"]
            elif "secret" in volume:
                host_dir = self._secret_dir(volume, fs_group)
                readonly = ",readonly" if mount.get("readOnly") else ""
                args += ["--mount", f"type=bind,source={host_dir},target={path}{readonly}"]
            else:
                raise AssertionError(f"volume type of {volume} is not emulated")
        return args

    def _secret_dir(self, volume: Obj, fs_group: int | None) -> Path:
        """The files the kubelet projects: each item at its path, defaultMode, group fsGroup."""
        source = volume["secret"]
        data = self.secrets[source["secretName"]]
        directory = self.workdir / f"secret-{volume['name']}-{secrets.token_hex(3)}"
        directory.mkdir(mode=0o755)
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            target = directory / item["path"]
            target.write_text(data[item["key"]])
            os.chmod(target, item.get("mode", source.get("defaultMode", 0o644)))
            if fs_group is not None:
                os.chown(target, 0, fs_group)
        return directory

    def docker_run_args(self, container: Obj, *, detach: bool) -> list[str]:
        pod_sc = self.spec.get("securityContext", {})
        sc = {**pod_sc, **container.get("securityContext", {})}
        name = f"chart-{self.name}-{container['name']}-{secrets.token_hex(3)}"
        args = [self.docker, "run", "--name", name, "--network", "host", "--label", "chart-test=1"]
        args += ["--detach"] if detach else []
        args += ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}"]
        for group in [pod_sc.get("fsGroup"), *pod_sc.get("supplementalGroups", [])]:
            if group is not None:
                args += ["--group-add", str(group)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        for capability in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", capability]
        for capability in sc.get("capabilities", {}).get("add", []):
            args += ["--cap-add", capability]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"  # Docker's default
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(quantity_cpus(limits["cpu"]))]
        for key, value in self.env(container).items():
            args += ["--env", f"{key}={value}"]
        args += self._volume_args(container)
        command, extra = container.get("command"), container.get("args", [])
        if command:
            args += ["--entrypoint", command[0], container["image"], *command[1:], *extra]
        else:
            args += [container["image"], *extra]
        self.started.append(name)
        return args

    def run_to_completion(self, container: Obj, timeout: float) -> subprocess.CompletedProcess[str]:
        """A Job's or an init container's run: (exit code, output)."""
        args = self.docker_run_args(container, detach=False)
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, container: Obj) -> str:
        result = subprocess.run(
            self.docker_run_args(container, detach=True),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return self.started[-1]

    def logs(self, name: str) -> str:
        result = subprocess.run(
            [self.docker, "logs", name], capture_output=True, text=True, timeout=30, check=False
        )
        return result.stdout + result.stderr

    def running(self, name: str) -> bool:
        result = subprocess.run(
            [self.docker, "inspect", "--format", "{{.State.Running}}", name],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return result.stdout.strip() == "true"

    def remove_all(self) -> None:
        if self.started:
            subprocess.run(
                [self.docker, "rm", "--force", *self.started],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip


def probe_port(container: Obj, probe: Obj) -> int:
    """The port a probe checks: named ports resolve to containerPort."""
    port = (probe.get("httpGet") or probe["tcpSocket"])["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    return int(port)


def probe_url(container: Obj, probe: Obj, port: int | None = None) -> str:
    """The URL a kubelet calls for an httpGet probe."""
    get = probe["httpGet"]
    scheme = get.get("scheme", "HTTP").lower()
    port = port or probe_port(container, probe)
    return f"{scheme}://{get.get('host', '127.0.0.1')}:{port}{get['path']}"


def probe_once(container: Obj, probe: Obj, port: int | None = None) -> tuple[bool, str]:
    """One kubelet probe within timeoutSeconds: httpGet succeeds on a status in [200, 400),
    tcpSocket when the connection opens. `port` replaces the container's (a test server)."""
    timeout = probe.get("timeoutSeconds", 1)
    if "tcpSocket" in probe:
        try:
            with socket.create_connection(("127.0.0.1", port or probe_port(container, probe)),
                                          timeout=timeout):  # fmt: skip
                return True, "connected"
        except OSError as exc:
            return False, f"{type(exc).__name__}: {exc}"
    request = urllib.request.Request(
        probe_url(container, probe, port), headers={"User-Agent": "kube-probe/1.34"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return 200 <= status < 400, f"HTTP {status}"


def wait_for_probe(pod: Pod, name: str, container: Obj, probe: Obj) -> str:
    """Probe every periodSeconds until success; fail after failureThreshold misses."""
    time.sleep(probe.get("initialDelaySeconds", 0))
    outcome = ""
    for _ in range(probe.get("failureThreshold", 3)):
        ok, outcome = probe_once(container, probe)
        if ok:
            return outcome
        assert pod.running(name), f"container exited while probed:\n{pod.logs(name)}"
        time.sleep(probe.get("periodSeconds", 10))
    raise AssertionError(
        f"probe {probe.get('httpGet', probe)} never passed ({outcome}):\n{pod.logs(name)}"
    )
