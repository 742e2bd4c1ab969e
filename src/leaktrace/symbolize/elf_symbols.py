"""Function names from an ELF symbol table (.symtab, else .dynsym): the fallback when
addr2line is missing or finds no debug info. Gives a function name, never a file or line."""

from __future__ import annotations

import bisect
import contextlib

from leaktrace.symbolize.demangle import demangle
from leaktrace.symbolize.names import clean_function_name


class ElfSymbolTable:
    def __init__(self, path: str) -> None:
        self.starts: list[int] = []
        self.entries: list[tuple[int, int, str]] = []  # (start, size, mangled name)
        # pyelftools is imported only here, when a frame lacks a function name: most reports
        # never need it, and it is 40 ms of start-up.
        from elftools.common.exceptions import ELFError

        with contextlib.suppress(OSError, ELFError, ValueError):
            self._load(path)  # an unreadable file simply has no symbols

    def _load(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        with open(path, "rb") as f:
            elf = ELFFile(f)
            table = elf.get_section_by_name(".symtab") or elf.get_section_by_name(".dynsym")
            if not isinstance(table, SymbolTableSection) or table.header.sh_type == "SHT_NOBITS":
                return
            entries = {
                (sym["st_value"], sym["st_size"], sym.name)
                for sym in table.iter_symbols()
                if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC")
                and sym["st_value"] and sym.name
            }
        self.entries = sorted(entries)
        self.starts = [e[0] for e in self.entries]

    def lookup(self, offset: int) -> str | None:
        """The demangled function containing `offset`. A symbol of size 0 (hand-written
        assembly) is taken to cover everything up to the next symbol."""
        symbol = self.lookup_symbol(offset)
        return clean_function_name(demangle(symbol)) if symbol else None

    def lookup_symbol(self, offset: int) -> str | None:
        """The symbol (mangled, as in the table) of the function containing `offset`."""
        i = bisect.bisect_right(self.starts, offset) - 1
        if i < 0:
            return None
        start = self.starts[i]
        names = []
        while i >= 0 and self.starts[i] == start:  # aliases share a start
            _, size, name = self.entries[i]
            if size == 0 or offset < start + size:
                names.append(name)
            i -= 1
        if not names:
            return None
        # Prefer the public alias: "malloc" over "__libc_malloc".
        return min(names, key=lambda n: (n.startswith("_") and not n.startswith("_Z"), len(n)))
