"""The few facts about an ELF file the symbolizer needs, read from its headers only."""

from __future__ import annotations

from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection


@dataclass(frozen=True)
class ElfInfo:
    has_dwarf: bool  # has .debug_info with content (not stripped to a debuglink)
    build_id: bytes | None
    debuglink: str | None  # file name from .gnu_debuglink


def read_elf_info(path: str) -> ElfInfo | None:
    """None when the file cannot be opened or is not ELF."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            info = elf.get_section_by_name(".debug_info")
            has_dwarf = info is not None and info.header.sh_type != "SHT_NOBITS" and (
                info.header.sh_size > 0
            )
            return ElfInfo(has_dwarf, _build_id(elf), _debuglink(elf))
    except (OSError, ELFError, ValueError):
        return None


def _build_id(elf: ELFFile) -> bytes | None:
    for section in elf.iter_sections():
        if not isinstance(section, NoteSection):
            continue
        for note in section.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                return bytes.fromhex(note["n_desc"])
    return None


def _debuglink(elf: ELFFile) -> str | None:
    section = elf.get_section_by_name(".gnu_debuglink")
    if section is None:
        return None
    data = section.data()
    name = data.split(b"\0", 1)[0]  # then padding and a CRC32 we do not check
    return name.decode("utf-8", "surrogateescape") or None
