"""Turn the caller texts of an mtrace log into symbolized frames.

glibc (2.34 and later) writes a caller in one of these forms:
  ./prog:[0x11a7]                          module and offset from the module's first mapping
  /lib/x86_64-linux-gnu/libc.so.6:(__strdup+1a)[0x9e9aa]   the same, with the nearest symbol
  [0x401136]                               a bare runtime address (no module known)
The bracketed number is relative to where the module's first segment was mapped (dladdr's
dli_fbase), which is not the ELF virtual address for non-PIE executables; we add the first
PT_LOAD address back before asking the symbolizer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Protocol

from leaktrace.model import Frame

_PAGE_SIZE = 4096  # the loader maps the first segment at its page-aligned address

# module, then an optional ":", an optional "(symbol+offset)" and "[0x...]"
_MODULE_FORM = re.compile(
    r"^(?P<module>.*?):?(?:\((?P<symbol>[^()]*)\))?\[(?P<offset>0x[0-9a-fA-F]+)\]$"
)
_BARE_ADDRESS = re.compile(r"^(?P<offset>0x[0-9a-fA-F]+)$")


class SymbolizerLike(Protocol):
    def resolve(
        self, requests: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Frame]]: ...


@dataclass(frozen=True)
class ParsedCaller:
    text: str  # as written in the log
    module: str | None  # as written; None for a bare address
    number: int  # offset from the module's first mapping, or the runtime address if no module
    number_text: str  # "0x11a7": what glibc's script prints when it cannot resolve the caller
    symbol: str | None  # "__strdup+1a" when glibc found one


def parse_caller(text: str) -> ParsedCaller | None:
    """None for an empty caller or one in a form we do not know (glibc's script prints those
    unchanged, and so do we)."""
    match = _MODULE_FORM.match(text) or _BARE_ADDRESS.match(text)
    if match is None:
        return None
    groups = match.groupdict()
    offset_text = groups["offset"]
    return ParsedCaller(
        text=text,
        module=groups.get("module") or None,
        number=int(offset_text, 16),
        number_text=offset_text,
        symbol=groups.get("symbol") or None,
    )


@cache
def first_mapping_address(path: str) -> int | None:
    """The page-aligned virtual address of the first PT_LOAD segment, None if not an ELF."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as handle:
            for segment in ELFFile(handle).iter_segments("PT_LOAD"):
                return int(segment["p_vaddr"]) & ~(_PAGE_SIZE - 1)
    except (OSError, ELFError):
        return None
    return None


class CallerResolver:
    """Symbolize mtrace callers. `binary` is the program the user named on the command line:
    it stands in for a logged module of the same file name (the log has paths relative to the
    traced program's working directory) and for bare addresses."""

    def __init__(self, binary: str | None, symbolizer: SymbolizerLike | None = None) -> None:
        self.binary = binary
        self._symbolizer = symbolizer
        self.notes: list[str] = []  # the symbolizer's remarks (missing files, ...)

    def module_file(self, module: str | None) -> str | None:
        """The file to read for a logged module path, None if there is none."""
        if module is None:
            return self.binary
        if self.binary and os.path.basename(module) == os.path.basename(self.binary):
            return self.binary
        return module if os.path.isfile(module) else None

    def request_for(self, caller: ParsedCaller) -> tuple[str, int] | None:
        """(file, ELF virtual address) for the symbolizer, None when it cannot be resolved."""
        path = self.module_file(caller.module)
        if path is None:
            return None
        if caller.module is None:  # a runtime address: right for non-PIE executables only
            return path, caller.number
        base = first_mapping_address(path)
        return None if base is None else (path, caller.number + base)

    def resolve(self, callers: Iterable[str], *, call_site: bool) -> dict[str, list[Frame]]:
        """Frames (innermost first) for each caller text that could be symbolized.

        A caller is a return address. With call_site=False it is looked up as it is, which is
        what glibc's script does (and so the line after a call at the end of a line); with
        call_site=True one byte earlier, inside the call instruction, as debuggers do."""
        requests: dict[str, tuple[str, int]] = {}
        for text in callers:
            parsed = parse_caller(text)
            request = self.request_for(parsed) if parsed else None
            if request:
                path, address = request
                requests[text] = (path, address - 1 if call_site and address else address)
        resolved = self._symbolize(requests.values())
        return {
            text: [replace(frame, address=request[1]) for frame in resolved.get(request, [])]
            for text, request in requests.items()
        }

    def resolve_backtrace_entries(
        self, entries: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Frame]]:
        """Frames for backtrace-extension entries (logged module path, ELF virtual address of
        a return address), looked up at the call site."""
        requests: dict[tuple[str, int], tuple[str, int]] = {}
        for module, offset in entries:
            path = self.module_file(module)
            if path is not None and offset > 0:
                requests[(module, offset)] = (path, offset - 1)
        resolved = self._symbolize(requests.values())
        return {key: resolved.get(request, []) for key, request in requests.items()}

    def _symbolize(self, requests: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[Frame]]:
        """The symbolizer wants absolute paths; answer by the paths we asked with."""
        by_absolute = {
            (os.path.abspath(path), address): (path, address) for path, address in requests
        }
        if not by_absolute:
            return {}
        symbolizer = self._get_symbolizer()
        resolved = symbolizer.resolve(by_absolute.keys())
        self.notes.extend(n for n in getattr(symbolizer, "notes", []) if n not in self.notes)
        return {by_absolute[key]: frames for key, frames in resolved.items() if _has_source(frames)}

    def _get_symbolizer(self) -> SymbolizerLike:
        if self._symbolizer is None:
            from leaktrace.symbolize import Symbolizer

            self._symbolizer = Symbolizer()
        return self._symbolizer


def _has_source(frames: list[Frame]) -> bool:
    """Whether the symbolizer found anything beyond the module+offset we gave it."""
    return any(frame.function or frame.file for frame in frames)


def source_location(frames: list[Frame]) -> str | None:
    """ "file:line" of the innermost frame that has one, as addr2line prints it."""
    for frame in frames:
        if frame.file and frame.line:
            return f"{frame.file}:{frame.line}"
    return None


NO_CALLER = "(no caller in the log)"


def caller_frame(caller: str, frames: list[Frame]) -> list[Frame]:
    """Frames for the report model: the symbolized ones, or one raw frame saying what we know."""
    parsed = parse_caller(caller)
    if frames:
        return [
            replace(frame, module=frame.module or (parsed.module if parsed else None))
            for frame in frames
        ]
    if parsed is None:  # glibc logs no caller for calls it could not place (its table: "at ")
        return [Frame(address=0, function=caller or NO_CALLER)]
    function = parsed.symbol.rsplit("+", 1)[0] if parsed.symbol else None
    offset = parsed.number if parsed.module else None
    return [Frame(address=parsed.number, function=function, module=parsed.module, offset=offset)]
