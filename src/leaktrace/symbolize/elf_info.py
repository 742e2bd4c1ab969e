"""The few facts about an ELF file the symbolizer needs, read from its headers only, and its
function symbols (the fallback for frames without debug info).

Read with `struct` rather than pyelftools: every report reads the facts for every module, and
most reports of stripped programs (Debian's) read a symbol table; importing pyelftools cost a
report of a small capture a quarter of its start-up time. The ELF layout used here is the
System V gABI's (ELF32 and ELF64, either byte order)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from leaktrace.errors import LeaktraceError
from leaktrace.input_files import open_regular

SHT_SYMTAB = 2
SHT_NOTE = 7
SHT_NOBITS = 8
SHT_DYNSYM = 11
STT_FUNC = 2
STT_GNU_IFUNC = 10
SHN_UNDEF = 0
NT_GNU_BUILD_ID = 3
SHN_XINDEX = 0xFFFF
MAX_SECTIONS = 1 << 16  # a real file has a few dozen; a corrupt count must not make us loop
MAX_TABLE_BYTES = 1 << 28  # a symbol or string table read whole; a corrupt size stops here


@dataclass(frozen=True)
class ElfInfo:
    has_dwarf: bool  # has .debug_info with content (not stripped to a debuglink)
    build_id: bytes | None
    debuglink: str | None  # file name from .gnu_debuglink


@dataclass(frozen=True)
class _Section:
    name: bytes
    type: int
    offset: int
    size: int
    link: int  # for a symbol table: the index of its string table


def read_elf_info(path: str) -> ElfInfo | None:
    """None when the file cannot be opened or is not ELF."""
    try:
        with open_regular(path, "ELF file") as f:
            sections = _sections(f)
            if sections is None:
                return None
            by_name = {s.name: s for s in reversed(sections)}  # the first of a name wins
            info = by_name.get(b".debug_info")
            has_dwarf = info is not None and info.type != SHT_NOBITS and info.size > 0
            return ElfInfo(has_dwarf, _build_id(f, sections, _byte_order(f)),
                           _debuglink(f, by_name.get(b".gnu_debuglink")))
    except (OSError, ValueError, struct.error, LeaktraceError):  # (a FIFO, a device)
        return None


def _byte_order(f: BinaryIO) -> str:
    f.seek(5)
    return "<" if f.read(1) == b"\x01" else ">"


def _sections(f: BinaryIO) -> list[_Section] | None:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or (
            ident[5] not in (1, 2)):
        return None
    wide = ident[4] == 2
    order = "<" if ident[5] == 1 else ">"
    header = f.read(48 if wide else 36)
    if wide:
        shoff, = struct.unpack_from(order + "Q", header, 0x28 - 16)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x3A - 16)
        entry = struct.Struct(order + "IIQQQQIIQQ")
    else:
        shoff, = struct.unpack_from(order + "I", header, 0x20 - 16)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", header, 0x2E - 16)
        entry = struct.Struct(order + "IIIIIIIIII")
    if shoff == 0 or shentsize < entry.size:
        return []

    def raw(index: int) -> tuple[int, ...]:
        f.seek(shoff + index * shentsize)
        return entry.unpack(f.read(entry.size))

    first = raw(0)
    if shnum == 0:  # more sections than fit in e_shnum: the count is in section 0's size
        shnum = first[5]
    if shstrndx == SHN_XINDEX:
        shstrndx = first[6]
    if shnum > MAX_SECTIONS:
        raise ValueError("implausible section count")
    headers = [first] + [raw(i) for i in range(1, shnum)]
    if shstrndx >= len(headers):
        return None
    names_at, names_size = headers[shstrndx][4], headers[shstrndx][5]
    f.seek(names_at)
    names = f.read(min(names_size, 1 << 24))
    sections = []
    for h in headers:
        end = names.find(b"\0", h[0])
        sections.append(_Section(names[h[0]:end if end >= 0 else len(names)], h[1], h[4], h[5],
                                 h[6]))
    return sections


def _build_id(f: BinaryIO, sections: list[_Section], order: str) -> bytes | None:
    for section in sections:
        if section.type != SHT_NOTE:
            continue
        f.seek(section.offset)
        data = f.read(min(section.size, 1 << 20))
        at = 0
        while at + 12 <= len(data):
            namesz, descsz, kind = struct.unpack_from(order + "III", data, at)
            name_at = at + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            if kind == NT_GNU_BUILD_ID and data[name_at:name_at + namesz] == b"GNU\0":
                return data[desc_at:desc_at + descsz]
            at = desc_at + (descsz + 3) // 4 * 4
    return None


def _debuglink(f: BinaryIO, section: _Section | None) -> str | None:
    if section is None or section.type == SHT_NOBITS:
        return None
    f.seek(section.offset)
    data = f.read(min(section.size, 4096))
    name = data.split(b"\0", 1)[0]  # then padding and a CRC32 we do not check
    return name.decode("utf-8", "surrogateescape") or None


def read_function_symbols(path: str, *, exported: bool = False) -> list[tuple[int, int, bytes]]:
    """The functions defined in .symtab, else in .dynsym (only .dynsym's, the ones other
    objects can bind to, with `exported`): (start, size, mangled name), sorted and without
    repeats. Empty when the file cannot be read, is not ELF or has no such table."""
    try:
        with open_regular(path, "ELF file") as f:
            sections = _sections(f)
            if not sections:
                return []
            by_name = {s.name: s for s in reversed(sections)}
            table = by_name.get(b".dynsym") if exported else \
                by_name.get(b".symtab") or by_name.get(b".dynsym")
            if table is None or table.type not in (SHT_SYMTAB, SHT_DYNSYM) or not (
                    0 < table.link < len(sections)):
                return []  # a .symtab of NOBITS (a stripped debug file) has none either
            f.seek(4)
            wide, order = f.read(1) == b"\x02", _byte_order(f)
            entry = struct.Struct(order + ("IBBHQQ" if wide else "IIIBBH"))
            f.seek(table.offset)
            data = f.read(min(table.size, MAX_TABLE_BYTES))
            strings = sections[table.link]
            f.seek(strings.offset)
            names = f.read(min(strings.size, MAX_TABLE_BYTES))
    except (OSError, ValueError, struct.error, LeaktraceError):  # (a FIFO, a device)
        return []
    found = set()
    for fields in entry.iter_unpack(data[:len(data) - len(data) % entry.size]):
        if wide:
            name_at, info, _, section, value, size = fields
        else:
            name_at, value, size, info, _, section = fields
        # An undefined function can have a value too: a non-PIE program that takes its
        # address gets a canonical PLT entry there. It is not a function of this file.
        if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or not value or (
                section == SHN_UNDEF) or name_at >= len(names):
            continue
        end = names.find(b"\0", name_at)
        name = names[name_at:end if end >= 0 else len(names)]
        if name:
            found.add((value, size, name))
    return sorted(found)
