"""Function symbols of a shared library file (name -> address range relative to the load
bias), for finding dlopen and the allocator in a target. pyelftools finds the sections; the
entries themselves are unpacked with struct, which is far quicker for libc's thousands."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from leaktrace.errors import LeaktraceError

_SYMBOL = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size
STT_FUNC = 2
STT_GNU_IFUNC = 10


@dataclass(frozen=True)
class ElfFunctions:
    """Functions by name, as (start, size) relative to the load bias; and where the file's
    first PT_LOAD expects to be (subtracted from its mapping's address to get the bias)."""

    functions: dict[str, tuple[int, int]]
    first_load_vaddr: int

    def address(self, name: str) -> int | None:
        entry = self.functions.get(name)
        return entry[0] if entry else None


def read_functions(path: str) -> ElfFunctions:
    """Every function in .dynsym and, when the file has one, .symtab (internal names too)."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or not elf.little_endian:
                raise LeaktraceError(f"{path} is not a 64-bit little-endian ELF file")
            loads = [s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
            functions: dict[str, tuple[int, int]] = {}
            for table_name in (".dynsym", ".symtab"):
                table = elf.get_section_by_name(table_name)
                if table is None or table["sh_type"] == "SHT_NOBITS":
                    continue
                strings = elf.get_section(table["sh_link"])
                _add_functions(functions, table.data(), strings.data())
    except (OSError, ELFError, ValueError) as e:
        raise LeaktraceError(f"cannot read the symbols of {path}: {e}") from None
    return ElfFunctions(functions, min(loads) if loads else 0)


def _add_functions(functions: dict[str, tuple[int, int]], table: bytes, strings: bytes) -> None:
    usable = len(table) - len(table) % _SYMBOL.size
    for name_at, info, _other, _section, value, size in _SYMBOL.iter_unpack(table[:usable]):
        if value == 0 or info & 0xF not in (STT_FUNC, STT_GNU_IFUNC):
            continue
        end = strings.find(b"\0", name_at)
        name = strings[name_at:end].decode("ascii", "replace")
        functions.setdefault(name, (value, size))
