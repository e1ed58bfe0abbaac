"""A real Prometheus on a loopback port for a test: scrapes one target every second with
the labels the chart's ServiceMonitor would give it, evaluates the chart's rules, and
answers PromQL over its HTTP API."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.localpg import free_port
from tools.service_process import stop_process

# What a ServiceMonitor's scrape gives every series of the release "app" in namespace "app":
# the operator's relabelling adds namespace, service, pod, container and endpoint, and the
# job is the Service's name.
TARGET_LABELS = {
    "namespace": "app",
    "service": "app",
    "pod": "app-5d8f7c9b4-x7k2p",
    "container": "app",
    "endpoint": "http",
}


@dataclass
class Prometheus:
    process: subprocess.Popen[str]
    port: int
    log: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; an error answer (a bad query: 400) is returned, not raised."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                body = json.load(exc)
            except ValueError:  # not the API yet: "Service Unavailable" while it starts
                body = {"status": "unavailable", "error": f"HTTP {exc.code}"}
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until `expr` returns data; the result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                answer = self.query(expr)
            except urllib.error.URLError:  # not listening yet
                answer = {}
            if answer.get("status") == "success" and answer["data"]["result"]:
                result: list[dict[str, Any]] = answer["data"]["result"]
                return result
            time.sleep(0.5)
        raise TimeoutError(f"no data for {expr} in {timeout}s:\n{self.log.read_text()[-3000:]}")


def config(target: str, rule_file: Path) -> dict[str, Any]:
    relabel = [
        {"target_label": name, "replacement": value} for name, value in TARGET_LABELS.items()
    ]
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": "app", "static_configs": [{"targets": [target]}],
             "relabel_configs": relabel},
        ],
    }  # fmt: skip


@contextlib.contextmanager
def running_prometheus(
    binary: str, target: str, rule_file: Path, workdir: Path, *flags: str
) -> Iterator[Prometheus]:
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(target, rule_file)))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", *flags],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    prometheus = Prometheus(process, port, log)
    try:
        prometheus.wait_for("up", timeout=30)
        yield prometheus
    finally:
        stop_process(process, timeout=15)


# A selector's metric name: an identifier right before `{` (every query here writes its
# selectors with braces, so this finds them all).
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def metric_names(expr: str) -> set[str]:
    return set(_SELECTOR.findall(expr))


def exposed_names(exposition: str) -> set[str]:
    """Every sample name in a /metrics text exposition."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
