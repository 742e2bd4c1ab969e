"""The symbol (linkage, mangled) name of a frame's function, as valgrind uses it in
suppressions: `_ZN3app4makeEi` rather than `app::make(int)`. Read from the module's ELF symbol
table; frames inlined into another function have no symbol of their own."""

from __future__ import annotations

from leaktrace.model import Frame
from leaktrace.symbolize.elf_symbols import ElfSymbolTable
from leaktrace.symbolize.names import without_version


class LinkageNames:
    """Looks symbols up once per (module, offset); symbol tables are read on first use."""

    def __init__(self) -> None:
        self._tables: dict[str, ElfSymbolTable] = {}
        self._names: dict[tuple[str, int], str | None] = {}
        self._aliases: dict[tuple[str, int], tuple[str, ...]] = {}

    def _table(self, frame: Frame) -> ElfSymbolTable | None:
        if frame.inlined or frame.module is None or frame.offset is None:
            return None
        if not frame.module.startswith("/"):
            return None  # [vdso] and the like: nothing on disk
        table = self._tables.get(frame.module)
        if table is None:
            table = self._tables[frame.module] = ElfSymbolTable(frame.module)
        return table

    def of(self, frame: Frame) -> str | None:
        table = self._table(frame)
        if table is None or frame.offset is None or frame.module is None:
            return None
        key = (frame.module, frame.offset)
        if key not in self._names:
            symbol = table.lookup_symbol(frame.offset)
            # "_IO_puts@@GLIBC_2.2.5": the version is not part of the name valgrind matches;
            # a GCC clone suffix (".constprop.0") is: valgrind shows the symbol as it is.
            self._names[key] = without_version(symbol) if symbol else None
        return self._names[key]

    def c_aliases(self, frame: Frame) -> tuple[str, ...]:
        """The plain (not C++-mangled) symbols of the frame's function: a frame named from
        debug info as glibc's source names it (__strndup, _IO_new_fclose) is the strndup or
        fclose a valgrind suppression names."""
        table = self._table(frame)
        if table is None or frame.offset is None or frame.module is None:
            return ()
        key = (frame.module, frame.offset)
        if key not in self._aliases:
            self._aliases[key] = tuple(sorted({without_version(n) for n in table.symbols_at(
                frame.offset) if not n.startswith("_Z")}))
        return self._aliases[key]
