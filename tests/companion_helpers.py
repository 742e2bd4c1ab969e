"""Helpers shared by the companion-tool tests: compile C at test time, run the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def compile_c(tmp_path: Path, source: str, name: str = "prog", *flags: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    c_file = tmp_path / f"{name}.c"
    c_file.write_text(source)
    binary = tmp_path / name
    subprocess.run(
        ["gcc", "-g", "-O0", "-fno-omit-frame-pointer", *flags, "-o", str(binary), str(c_file)],
        check=True,
        capture_output=True,
    )
    return binary


def marker_line(source: str, marker: str) -> int:
    """1-based line number of the line that contains `marker` (a comment in test sources)."""
    for number, line in enumerate(source.splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"marker {marker!r} not in source")


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "leaktrace", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode not in (0, 1), result
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("leaktrace: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert re.search(needle, errors[0]), errors[0]
