"""Batch symbolization with llvm-symbolizer: one process per module, every address on stdin,
one JSON answer per line. Preferred over addr2line when installed: faster, and it names
inlined functions correctly where binutils 2.40 does not (docs/symbolizer.md)."""

from __future__ import annotations

import json
import os

from leaktrace.model import Frame
from leaktrace.symbolize.batch_process import SymbolizerToolFailed, run_batch
from leaktrace.symbolize.names import clean_function_name


def run_llvm_symbolizer(executable: str, elf_path: str, offsets: list[int],
                        module_path: str) -> dict[int, list[Frame]]:
    """Frames for each offset of `elf_path` (the module or its separate debug file), innermost
    (inlined) first. `module_path` is what the frames name as their module."""
    command = [executable, "--output-style=JSON", "--inlining", "--demangle",
               "--functions=linkage", f"--obj={elf_path}"]
    answers = run_batch(command, elf_path, offsets).splitlines()
    if len(answers) != len(offsets):
        raise SymbolizerToolFailed(f"{executable} failed on {elf_path}: unexpected output")
    return {offset: _frames(answer, offset, module_path)
            for offset, answer in zip(offsets, answers, strict=True)}


def _frames(answer: str, offset: int, module_path: str) -> list[Frame]:
    try:
        symbols = json.loads(answer).get("Symbol") or []
    except (json.JSONDecodeError, AttributeError):
        symbols = []
    frames = []
    for i, symbol in enumerate(symbols):
        function = symbol.get("FunctionName") or None
        if function in ("??", "_end"):  # "_end": past the last symbol, not a function
            function = None
        file = symbol.get("FileName") or None
        line = symbol.get("Line") or None
        frames.append(Frame(
            address=0,
            function=clean_function_name(function) if function else None,
            file=os.path.normpath(file) if file else None,
            line=line if file else None,
            module=module_path,
            offset=offset,
            inlined=i < len(symbols) - 1,  # all but the outermost were inlined into it
        ))
    return frames or [Frame(address=0, module=module_path, offset=offset)]

