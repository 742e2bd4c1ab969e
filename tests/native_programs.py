"""Helpers for tests that compile tiny C/C++ programs and point captures at them: compile,
find the line of a marker comment, find the return addresses of calls to a function, and
describe the binary as a capture MODULES entry at any load bias (to imitate ASLR)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from leaktrace.capture.reader import Module


def compile_source(tmp: Path, name: str, source: str, *flags: str) -> Path:
    """Write `source` to tmp/name and compile it with -g (plus `flags`) into tmp/<stem>."""
    src = tmp / name
    src.write_text(source)
    compiler = "g++" if name.endswith(".cpp") else "gcc"
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    exe = tmp / src.stem
    subprocess.run([compiler, "-g", *flags, "-o", str(exe), str(src)], check=True,
                   capture_output=True, text=True)
    return exe


def marker_line(source: str, marker: str) -> int:
    """1-based line of the line containing the comment `/* marker */`."""
    for number, text in enumerate(source.splitlines(), start=1):
        if f"/* {marker} */" in text:
            return number
    raise AssertionError(f"marker {marker} not in source")


_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")


def return_addresses_of_calls(binary: Path, callee: str) -> list[int]:
    """File-relative return addresses (the instruction after each `call <callee...>`)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(binary)], check=True,
                         capture_output=True, text=True).stdout
    addresses: list[int] = []
    pending = False
    for line in out.splitlines():
        m = _INSN.match(line)
        if not m:
            continue
        if pending:
            addresses.append(int(m.group(1), 16))
            pending = False
        insn = m.group(2)
        if insn.startswith("call") and f"<{callee}" in insn:
            pending = True
    return addresses


def module_at(binary: Path, load_bias: int, build_id: bytes = b"") -> Module:
    """The MODULES entry the shim would write for `binary` loaded at `load_bias`."""
    with open(binary, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
    start = min(s["p_vaddr"] for s in loads)
    end = max(s["p_vaddr"] + s["p_memsz"] for s in loads)
    return Module(load_bias, load_bias + start, load_bias + end, False, build_id, str(binary))
