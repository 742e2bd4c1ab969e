"""The symbol (linkage, mangled) name of a frame's function, as valgrind uses it in
suppressions: `_ZN3app4makeEi` rather than `app::make(int)`. Read from the module's ELF symbol
table; frames inlined into another function have no symbol of their own."""

from __future__ import annotations

import re

from leaktrace.model import Frame
from leaktrace.symbolize.elf_symbols import ElfSymbolTable

# "_IO_puts@@GLIBC_2.2.5": the version is not part of the name valgrind matches. GCC clone
# suffixes (".constprop.0") are: valgrind shows the symbol as it is.
_SYMBOL_VERSION = re.compile(r"@@?[A-Za-z][A-Za-z0-9_.]*$")


class LinkageNames:
    """Looks symbols up once per (module, offset); symbol tables are read on first use."""

    def __init__(self) -> None:
        self._tables: dict[str, ElfSymbolTable] = {}
        self._names: dict[tuple[str, int], str | None] = {}

    def of(self, frame: Frame) -> str | None:
        if frame.inlined or frame.module is None or frame.offset is None:
            return None
        if not frame.module.startswith("/"):
            return None  # [vdso] and the like: nothing on disk
        key = (frame.module, frame.offset)
        if key not in self._names:
            table = self._tables.get(frame.module)
            if table is None:
                table = self._tables[frame.module] = ElfSymbolTable(frame.module)
            symbol = table.lookup_symbol(frame.offset)
            self._names[key] = _SYMBOL_VERSION.sub("", symbol) if symbol else None
        return self._names[key]
