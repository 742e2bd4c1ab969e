"""Helpers for tests that run real programs under the real shim: compile a test program,
run it with `leaktrace run`, read the JSON report, and find where a marker comment sits in
the source (so tests never hard-code line numbers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"
LEAKTRACE = [sys.executable, "-m", "leaktrace"]


def marker_line(source: str, marker: str) -> int:
    """Line number (1-based) of the line holding `@leak:<marker>` or `@call:<marker>`."""
    for number, text in enumerate((PROGRAMS / source).read_text().splitlines(), start=1):
        if f"@leak:{marker} " in text + " " or f"@call:{marker} " in text + " ":
            return number
    raise AssertionError(f"marker {marker} not found in {source}")


def compile_program(
    source: str,
    out_dir: Path,
    opt: str = "-O2",
    extra: list[str] | None = None,
    output: str | None = None,
) -> Path:
    src = PROGRAMS / source
    compiler = "g++" if src.suffix == ".cpp" else "gcc"
    if shutil.which(compiler) is None:
        raise AssertionError(f"{compiler} is needed to build the test programs")
    exe = out_dir / (output or f"{src.stem}{opt}")
    cmd = [
        compiler,
        opt,
        "-g",
        "-fno-omit-frame-pointer" if opt == "-O0" else "-fomit-frame-pointer",
        "-pthread",
        "-o",
        str(exe),
        str(src),
        *(extra or []),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return exe


@dataclass
class TracedRun:
    returncode: int
    stdout: str
    stderr: str
    capture: Path
    report: dict[str, Any]


def leaktrace(
    *args: str, cwd: Path | None = None, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEAKTRACE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=check,
        env=os.environ.copy(),
    )


# Every loss record of every kind, nothing suppressed: tests count every live block.
EVERY_RECORD = ("--show", "all", "--no-default-suppressions")


def json_report(capture: Path, *options: str) -> dict[str, Any]:
    done = leaktrace("report", str(capture), "--format", "json", *(options or EVERY_RECORD))
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def run_traced(exe: Path, *args: str, work: Path, options: tuple[str, ...] = ()) -> TracedRun:
    capture = work / f"{exe.name}.{len(list(work.glob('*.lt')))}.lt"
    done = leaktrace("run", "-o", str(capture), *options, "--", str(exe), *args, cwd=work)
    assert "Traceback" not in done.stderr, done.stderr
    assert capture.exists(), f"no capture written:\n{done.stderr}"
    report = json_report(capture)
    # The test programs free only what they allocated: a free the shim calls invalid is a
    # block it failed to record (tests/test_invalid_frees.py has the deliberate ones).
    assert not report["invalid_frees"], report["invalid_frees"]
    return TracedRun(done.returncode, done.stdout, done.stderr, capture, report)


def allocation_site(record: dict[str, Any], source: str) -> tuple[str, int] | None:
    """The first frame of `record` in `source`: where the test program made the allocation."""
    for frame in record["frames"]:
        if frame.get("file") and Path(frame["file"]).name == source:
            return source, frame["line"]
    return None


def live_records(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Live blocks grouped by (API kind, backtrace) whatever their leak kind: the loss records
    of one backtrace merged (their own bytes added up), and the memory mappings."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for record in report["records"]:
        key = (record["kind"], record["stack_id"])
        own = record["direct_bytes"] if record["direct_bytes"] is not None else record["bytes"]
        if key not in merged:
            merged[key] = {**record, "bytes": own, "leak_kind": None, "direct_bytes": None,
                           "indirect_bytes": None, "loss_record": None}
        else:
            merged[key]["bytes"] += own
            merged[key]["blocks"] += record["blocks"]
    return list(merged.values()) + list(report.get("mapped_regions", []))


def records_from(report: dict[str, Any], source: str, marker: str) -> list[dict[str, Any]]:
    """Live records (leak kinds merged) whose allocation site in `source` is the line with
    `marker`."""
    line = marker_line(source, marker)
    return [r for r in live_records(report) if allocation_site(r, source) == (source, line)]


def program_records(report: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Live records (leak kinds merged) allocated (somewhere up the stack) by the test
    program's own code."""
    return [r for r in live_records(report) if allocation_site(r, source) is not None]


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Bad input: exit code 2 and exactly one `leaktrace: error: ...` line holding `words`."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leaktrace: error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
