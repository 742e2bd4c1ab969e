"""Batch symbolization with binutils addr2line: one process per module, fed every address
on stdin. Used when llvm-symbolizer is not installed (docs/symbolizer.md compares them)."""

from __future__ import annotations

import os

from leaktrace.model import Frame
from leaktrace.symbolize.batch_process import run_batch
from leaktrace.symbolize.names import clean_function_name


def run_addr2line(executable: str, elf_path: str, offsets: list[int],
                  module_path: str) -> dict[int, list[Frame]]:
    """Frames for each offset of `elf_path` (the module or its separate debug file), innermost
    (inlined) first. `module_path` is what the frames name as their module."""
    command = [executable, "--functions", "--inlines", "--demangle", "--addresses",
               "--exe", elf_path]
    return parse_addr2line_output(run_batch(command, elf_path, offsets), offsets, module_path)


def parse_addr2line_output(output: str, offsets: list[int],
                           module_path: str) -> dict[int, list[Frame]]:
    """With --addresses each answer starts with the address echoed back, then pairs of lines
    (function, file:line), one pair per inlined level, innermost first."""
    lines = output.splitlines()
    result: dict[int, list[Frame]] = {}
    i = 0
    for index, offset in enumerate(offsets):
        next_offset = offsets[index + 1] if index + 1 < len(offsets) else None
        if i < len(lines) and _is_address_line(lines[i], offset):
            i += 1
        frames: list[Frame] = []
        while i + 1 < len(lines) and not _is_address_line(lines[i], next_offset):
            name, (file, line) = lines[i], _parse_location(lines[i + 1])
            function = None if name == "??" else clean_function_name(name)
            frames.append(Frame(address=0, function=function, file=file, line=line,
                                module=module_path, offset=offset, inlined=True))
            i += 2
        if frames:
            frames[-1].inlined = False  # the outermost is the real (non-inlined) function
        else:
            frames.append(Frame(address=0, module=module_path, offset=offset))
        result[offset] = frames
    return result


def _is_address_line(line: str, offset: int | None) -> bool:
    if offset is None or not line.startswith("0x"):
        return False
    try:
        return int(line, 16) == offset
    except ValueError:
        return False


def _parse_location(text: str) -> tuple[str | None, int | None]:
    """'dir/file.c:12 (discriminator 3)' -> ('dir/file.c', 12); '??:0' -> (None, None)."""
    text = text.split(" (discriminator", 1)[0]
    file, _, line = text.rpartition(":")
    if not file or file == "??":
        return None, None
    number = int(line) if line.isdigit() and int(line) > 0 else None
    return os.path.normpath(file), number
