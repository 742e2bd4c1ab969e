"""Shared by the export, diff/merge and HTML tests: export_leaks.c built once, captures of it
with a chosen leak count, and the expected numbers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from leakharness import compile_program, leaktrace

SOURCE = "export_leaks.c"
BIG_BYTES = 2 * 1000  # leak_big: 2 callocs of 1000 bytes


def small_bytes(count: int) -> int:
    return count * 24


def name_bytes(count: int) -> int:
    return count * 16


def definitely_lost(count: int) -> int:
    return small_bytes(count) + BIG_BYTES + name_bytes(count)


def build(out_dir: Path) -> Path:
    programs = Path(__file__).parent / "programs"
    return compile_program(SOURCE, out_dir, extra=[f"-I{programs}"])


def capture(exe: Path, count: int, work: Path, name: str | None = None) -> Path:
    """A real run of export_leaks with `count`; returns its capture."""
    path = work / (name or f"export-{count}.lt")
    done = leaktrace("run", "-o", str(path), "--", str(exe), str(count), cwd=work)
    assert path.exists(), done.stderr
    return path


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is needed by this test: apt-get install -y {package}")
    return found


def run_tool(*args: str, env: dict[str, str] | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)
