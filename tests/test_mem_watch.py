"""`leaktrace mem` and `leaktrace watch` on real processes whose memory the test controls."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from companion_helpers import assert_one_line_error, compile_c, run_cli

from leaktrace.procmem.live_chart import chart_lines
from leaktrace.procmem.smaps import mapping_kind, parse_rollup, parse_smaps
from leaktrace.procmem.trend import GROWING, STABLE, TOO_FEW, fit_trend

MIB = 1024 * 1024
NO_SUCH_PID = "4194305"  # above the kernel's largest PID (2^22)

HOLDS_50_MB = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
char * volatile big;
char * volatile small;
int main(void) {
  big = malloc(50u << 20);
  memset(big, 1, 50u << 20);       /* touched: resident and private dirty */
  small = malloc(1000);             /* on the brk heap */
  memset(small, 1, 1000);
  printf("ready\n"); fflush(stdout);
  pause();
  return 0;
}
"""

GROWS = "import time\nc = []\nwhile True:\n    c.append(b'x' * (1 << 20)); time.sleep(0.05)\n"
FLAT = (
    "import sys, time\nkeep = b'x' * (30 << 20)\nprint('ready', flush=True)\n"
    "while True:\n    time.sleep(0.05)\n"
)


def _wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    binary = compile_c(tmp_path, HOLDS_50_MB, "holder")
    process = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True)
    try:
        _wait_ready(process)
        yield process
    finally:
        process.kill()
        process.wait()


def test_mem_sees_the_50_mb_block(holder: subprocess.Popen[str]) -> None:
    result = run_cli("mem", str(holder.pid), "--format", "json")
    assert result.returncode == 0, result.stderr
    memory = json.loads(result.stdout)
    assert memory["pid"] == holder.pid
    assert memory["totals"]["Rss"] >= 50 * MIB
    assert memory["totals"]["Private_Dirty"] >= 50 * MIB
    assert memory["totals"]["Size"] >= memory["totals"]["Rss"]
    largest = memory["mappings"][0]  # sorted by size
    assert (largest["kind"], largest["path"]) == ("anon", "")
    assert largest["size"] >= 50 * MIB
    assert largest["fields"]["Rss"] >= 50 * MIB
    assert memory["by_kind"]["anon"]["Rss"] >= 50 * MIB
    assert {"heap", "stack", "file", "vdso"} <= set(memory["by_kind"])
    assert sum(g["mappings"] for g in memory["by_kind"].values()) == len(memory["mappings"])


def test_mem_text_lists_totals_kinds_and_mappings(holder: subprocess.Popen[str]) -> None:
    result = run_cli("mem", str(holder.pid), "--top", "5")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for label in ("Rss", "Pss", "Private dirty", "Shared clean", "Swap", "Anonymous"):
        assert label in text
    assert "Mappings, largest first (kB), 5 of" in text
    mapping_rows = text.split("Path\n", 1)[1].splitlines()
    assert len(mapping_rows) == 5
    assert int(mapping_rows[0].split()[3].replace(",", "")) >= 50 * 1024  # Size column, kB


def test_watch_command_that_grows_says_growing(tmp_path: Path) -> None:
    csv_file, plot_file = tmp_path / "samples.csv", tmp_path / "plot.html"
    result = run_cli(
        "watch", "--interval", "0.1", "--duration", "2.5", "--format", "json",
        "--csv", str(csv_file), "--plot", str(plot_file), "--", sys.executable, "-c", GROWS,
    )  # fmt: skip
    assert result.returncode == 99, result.stderr  # 99: leaks found (growing)
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == GROWING
    low, high = verdict["ci95_bytes_per_minute"]
    assert 0 < low <= verdict["bytes_per_minute"] <= high
    assert verdict["last"]["rss"] - verdict["first"]["rss"] > 10 * MIB
    with csv_file.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == verdict["samples"] >= 3
    assert set(rows[0]) == {
        "seconds",
        "rss_bytes",
        "pss_bytes",
        "private_dirty_bytes",
        "heap_bytes",
    }
    assert "<svg" in plot_file.read_text()


def test_watch_flat_process_says_stable() -> None:
    process = subprocess.Popen([sys.executable, "-c", FLAT], stdout=subprocess.PIPE, text=True)
    try:
        _wait_ready(process)
        result = run_cli("watch", str(process.pid), "--interval", "0.1", "--duration", "2")
    finally:
        process.kill()
        process.wait()
    assert result.returncode == 0, result.stderr
    assert "STABLE" in result.stdout
    assert "95% CI" in result.stdout


def test_watch_stops_when_the_process_exits() -> None:
    result = run_cli("watch", "--interval", "0.05", "--duration", "30", "--", "sleep", "0.5")
    assert result.returncode == 0, result.stderr
    assert "exited after" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["mem", "watch"])
def test_missing_pid_is_a_one_line_error(command: str) -> None:
    assert_one_line_error(run_cli(command, NO_SUCH_PID), f"no process with PID {NO_SUCH_PID}")


def test_a_zombie_is_a_one_line_error() -> None:
    """An exited child its parent has not reaped has no memory: mem printed empty tables and
    exited 0."""
    zombie = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while b") Z" not in Path(f"/proc/{zombie.pid}/stat").read_bytes():
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert_one_line_error(run_cli("mem", str(zombie.pid)), "has exited", "zombie")
        assert_one_line_error(run_cli("watch", str(zombie.pid)), "no process with PID")
    finally:
        zombie.wait()


def test_missing_command_is_a_one_line_error() -> None:
    assert_one_line_error(run_cli("watch", "--", "/no/such/program"), "not found")


def test_bad_plot_extension_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli(
        "watch", "--interval", "0.05", "--duration", "0.3", "--plot", str(tmp_path / "x.bmp"),
        "--", "sleep", "1",
    )  # fmt: skip
    assert_one_line_error(result, r"\.html, \.svg or \.png")


def test_non_numeric_pid_is_a_usage_error() -> None:
    result = run_cli("mem", "abc")
    assert result.returncode == 2
    assert_one_line_error(result, "'abc' is not a valid integer")


# --- units ----------------------------------------------------------------------------------

SMAPS = """\
55d93e882000-55d93e884000 r--p 00000000 fe:00 260386                     /usr/bin/head
Size:                  8 kB
Rss:                   8 kB
Private_Dirty:         0 kB
THPeligible:           0
VmFlags: rd mr mw me
55d93f000000-55d93f021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                 100 kB
Private_Dirty:       100 kB
NewFieldFromAFutureKernel:   4 kB
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0
Size:                  4 kB
"""


def test_smaps_fields_are_read_by_name() -> None:
    mappings = parse_smaps(SMAPS)
    assert [m.kind for m in mappings] == ["file", "heap", "anon"]
    assert mappings[1].fields["Rss"] == 100 * 1024
    assert mappings[1].fields["NewFieldFromAFutureKernel"] == 4096
    assert mappings[0].fields["THPeligible"] == 0
    assert "VmFlags" not in mappings[0].fields
    assert mappings[2].size == 4096 and mappings[2].get("Rss") == 0
    assert parse_rollup("x-y ---p 0 0:0 0 [rollup]\nRss: 10 kB\nPss:  5 kB\n") == {
        "Rss": 10240,
        "Pss": 5120,
    }


def test_mapping_kinds() -> None:
    assert mapping_kind("[stack]") == "stack"
    assert mapping_kind("[vvar]") == mapping_kind("[vdso]") == "vdso"
    assert mapping_kind("[anon:jemalloc]") == "anon"
    assert mapping_kind("/lib/libc.so.6 (deleted)") == "file"


def test_trend_verdicts() -> None:
    seconds = [i * 0.5 for i in range(20)]
    rising = fit_trend(seconds, [10 * MIB + i * MIB for i in range(20)], min_growth_bytes=MIB)
    assert rising.verdict == GROWING
    assert rising.bytes_per_minute == pytest.approx(120 * MIB)
    wobble = [10 * MIB + (4096 if i % 2 else 0) for i in range(20)]
    assert fit_trend(seconds, wobble, min_growth_bytes=MIB).verdict == STABLE
    assert fit_trend([0.0, 1.0], [1, 2], min_growth_bytes=0).verdict == TOO_FEW


def test_chart_lines_scale_to_the_range() -> None:
    lines = chart_lines([0, 50, 100], width=10, rows=2)
    assert len(lines) == 2
    assert lines[0][-1] == "█" and lines[1][0] == "▁"
