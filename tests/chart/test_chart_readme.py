"""The values table in charts/app/README.md is what readme-generator-for-helm makes of
values.yaml: a key added or changed without regenerating it (`make chart-docs`) fails."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.chartlib import CHART, INSTALL_TOOLS, ROOT
from tools.prereq import find_tool, missing

pytestmark = pytest.mark.helm

GENERATOR = ROOT / ".tools" / "npm" / "node_modules" / ".bin" / "readme-generator"


def generate(readme: Path, values: Path) -> subprocess.CompletedProcess[str]:
    if find_tool("node") is None:
        missing("`node` not found (install it with: apt-get install nodejs npm)")
    if not GENERATOR.exists():
        install = f"{INSTALL_TOOLS} readme-generator"
        missing(f"readme-generator-for-helm not installed (install it with: {install})")
    return subprocess.run(
        [str(GENERATOR), "--values", str(values), "--readme", str(readme)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_values_table_is_up_to_date(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)
    result = generate(readme, CHART / "values.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert readme.read_text() == (CHART / "README.md").read_text(), (
        "charts/app/README.md is out of date: run `make chart-docs`"
    )


def test_an_undocumented_key_fails_the_generator(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text((CHART / "values.yaml").read_text() + "\nundocumentedKey: 1\n")
    readme = tmp_path / "README.md"
    shutil.copy(CHART / "README.md", readme)
    result = generate(readme, values)
    assert result.returncode != 0
    assert "undocumentedKey" in result.stdout + result.stderr
