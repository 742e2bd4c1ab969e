"""Function names from an ELF symbol table (.symtab, else .dynsym): the fallback when
addr2line is missing or finds no debug info. Gives a function name, never a file or line."""

from __future__ import annotations

import bisect

from leaktrace.symbolize.demangle import demangle
from leaktrace.symbolize.elf_info import read_function_symbols
from leaktrace.symbolize.names import clean_function_name


class ElfSymbolTable:
    def __init__(self, path: str) -> None:
        # An unreadable file simply has no symbols.
        self.entries: list[tuple[int, int, str]] = [  # (start, size, mangled name)
            (start, size, name.decode("utf-8", "replace"))
            for start, size, name in read_function_symbols(path)]
        self.starts: list[int] = [e[0] for e in self.entries]

    def lookup(self, offset: int) -> str | None:
        """The demangled function containing `offset`. A symbol of size 0 (hand-written
        assembly) is taken to cover everything up to the next symbol."""
        symbol = self.lookup_symbol(offset)
        return clean_function_name(demangle(symbol)) if symbol else None

    def symbols_at(self, offset: int) -> list[str]:
        """Every symbol (mangled, as in the table) of the function containing `offset`: the C
        library names one function several ways (fclose, _IO_fclose, _IO_new_fclose)."""
        i = bisect.bisect_right(self.starts, offset) - 1
        if i < 0:
            return []
        start = self.starts[i]
        names = []
        while i >= 0 and self.starts[i] == start:  # aliases share a start
            _, size, name = self.entries[i]
            if size == 0 or offset < start + size:
                names.append(name)
            i -= 1
        return names

    def lookup_symbol(self, offset: int) -> str | None:
        """The symbol (mangled, as in the table) of the function containing `offset`."""
        names = self.symbols_at(offset)
        if not names:
            return None
        # Prefer the public alias: "malloc" over "__libc_malloc"; then the shorter; then the
        # first in order, as valgrind does (a constructor's C1 over its C2 alias).
        return min(names, key=lambda n: (n.startswith("_") and not n.startswith("_Z"), len(n),
                                          n))
