"""Helpers for the leaktrace.track() and pytest plugin tests: build the test extension module
(tests/programs/track_ext.c) with setuptools in a temporary directory, and run Python code in
a fresh interpreter that can import it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

PROGRAMS = Path(__file__).parent / "programs"
EXTENSION_SOURCE = PROGRAMS / "track_ext.c"

_BUILD = """
import sys
from setuptools import Distribution, Extension
out = sys.argv[1]
ext = Extension("lt_track_ext", [sys.argv[2]], extra_compile_args=["-O1", "-g"])
dist = Distribution({"name": "lt_track_ext", "ext_modules": [ext]})
cmd = dist.get_command_obj("build_ext")
cmd.build_lib = out
cmd.build_temp = out + "/build"
cmd.ensure_finalized()
cmd.run()
"""


def build_extension(out_dir: Path) -> Path:
    """Builds lt_track_ext into out_dir (in a child process: setuptools changes global
    state); returns the directory to put on sys.path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", _BUILD, str(out_dir), str(EXTENSION_SOURCE)],
                   check=True, capture_output=True, text=True, cwd=out_dir)
    return out_dir


def run_python(code: str, ext_dir: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter with the extension importable."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ext_dir), *filter(None, [full_env.get("PYTHONPATH")])])
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def run_json(code: str, ext_dir: Path, env: dict[str, str] | None = None) -> Any:
    """Runs `code`, which prints one JSON document last; returns it."""
    result = run_python(code, ext_dir, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def marker_line(marker: str) -> int:
    for number, text in enumerate(EXTENSION_SOURCE.read_text().splitlines(), start=1):
        if f"@leak:{marker} " in text + " ":
            return number
    raise AssertionError(f"marker {marker} not found")


def records_from(report: dict[str, Any], file_name: str, line: int) -> list[dict[str, Any]]:
    """The JSON report's records whose backtrace passes through file_name:line."""
    return [r for r in report["records"]
            if any(f.get("file") and f["file"].endswith(file_name) and f.get("line") == line
                   for f in r["frames"])]
