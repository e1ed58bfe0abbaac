"""The benchmark's front doors: `make bench` and its data-size mode, their arguments, and the
figures they derive from a run's rounds."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import collector, compare, sizes
from bench.comparisons import RELATIVE_TARGET, relative_figures
from tools.prereq import ROOT, require_tool


def make_dry_run(*args: str) -> str:
    done = subprocess.run(
        ["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_bench_sizes_switches_make_bench_to_the_data_size_mode() -> None:
    assert "-m bench.run" in make_dry_run("bench")
    sized = make_dry_run("bench", "BENCH_SIZES=100k,10m")
    assert "-m bench.sizes --sizes 100k,10m" in sized and "bench.run" not in sized
    quick = make_dry_run("bench-quick", "BENCH_SIZES=100k,1m")
    assert "-m bench.sizes --quick --sizes 100k,1m" in quick


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--sizes", "100k"], "at least two sizes"),
        (["--sizes", "100k,ten"], "'ten' is not a data size"),
        (["--sizes", "100k,100100"], "multiple of 200"),
        (["--scenarios", "get_item,nope"], "unknown ['nope']"),
        (["--shared-buffers", "lots"], "give a size, e.g. 128MB"),
    ],
)
def test_the_data_size_mode_names_a_bad_argument(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        sizes.main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


def test_compare_names_a_bad_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        compare.main(["--variant", "a: X=1", "--rows", "lots"])
    assert "--rows: 'lots' is not a data size" in capsys.readouterr().err


def test_list_pages_are_compared_with_get_by_id_round_by_round() -> None:
    figures = relative_figures(
        {
            "get_item": [0.5, 0.4, 0.6],
            "list_page": [0.45, 0.4, 0.66],
            "list_by_tag": [0.4, 0.2, 0.3],
        }
    )
    assert figures["list_page"]["rounds"] == [0.9, 1.0, 1.1]
    assert figures["list_page"]["over_get_item"] == 1.0 and figures["list_page"]["met"]
    assert figures["list_by_tag"]["rounds"] == [0.8, 0.5, 0.5]
    assert not figures["list_by_tag"]["met"] and figures["list_by_tag"]["target"] == RELATIVE_TARGET


@pytest.mark.slow
def test_the_data_size_mode_measures_each_size_side_by_side(tmp_path: Path) -> None:
    require_tool("wrk", provided_by="apt-get install wrk", env_var="WRK")
    output = tmp_path / "sizes.json"
    argv = ["--sizes", "4k,2k", "--quick", "--duration", "1", "--rounds", "2",
            "--scenarios", "get_item,list_by_rare_tag", "--shared-buffers", "64MB",
            "--output", str(output)]  # fmt: skip
    assert sizes.main(argv) == 0
    report = json.loads(output.read_text())
    assert list(report["sizes"]) == ["2k", "4k"] and report["base"] == "2k"
    assert report["sizes"]["4k"]["links"] == 12_000 and report["sizes"]["4k"]["seeding_s"] > 0
    for scenario in ("get_item", "list_by_rare_tag"):
        row = report["scenarios"][scenario]
        assert row["2k"]["rps"] > 0 and row["4k"]["rps"] > 0
        ratio = row["ratio 4k"]
        assert len(ratio["rounds"]) == 2 and ratio["target"] == 0.9
        assert ratio["met"] == (ratio["median"] >= 0.9)
    assert not any(report["errors"].values())
    assert report["machine"]["shared_buffers"] == "64MB"


@pytest.mark.slow
def test_the_collector_bench_reads_its_bar_beside_two_identical_services(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every variant runs, the twin of tracing off included, and no request fails. (Whether
    the refused collector's spans are counted is tests/service/test_tracing.py's: here the
    first failed export may come after this short run.)"""
    require_tool("wrk", provided_by="apt-get install wrk", env_var="WRK")
    assert collector.main(["--rounds", "1", "--seconds", "1"]) in (0, 1)  # 1: the bar missed
    line = capsys.readouterr().out.strip().splitlines()[-1]
    for variant in ("collector up", "collector down", "collector 2 s late"):
        assert f"{variant} " in line, line
    assert f"{collector.TWIN} " in line and "a second service with tracing off" in line, line
    assert "failed requests 0;" in line, line
    assert re.search(r"server CPU a request: tracing off \d+ us, .*collector down \d+ us", line)


def test_a_pooled_percentile_is_taken_as_the_open_loop_script_takes_it() -> None:
    """bench/wrk/open_loop.lua's pct(p): the value at 1-based place floor(n * p / 100) + 1."""
    ordered = list(range(1, 201))  # 200 latencies: p99 is the 199th, p50 the 101st
    assert collector.percentile(ordered, 99) == 199
    assert collector.percentile(ordered, 50) == 101
    assert collector.percentile(ordered, 100) == 200
    assert collector.percentile([7], 99) == 7
    assert collector.percentile([], 99) == 0
