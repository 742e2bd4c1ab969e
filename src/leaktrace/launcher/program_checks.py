"""Refuse, before launching, the programs the shim cannot enter, with the reason in one line:
missing, not executable, statically linked, another ELF class, setuid/setgid or with file
capabilities (the loader then ignores LD_PRELOAD), built with a sanitizer (its runtime
replaces malloc: the shim would see no allocation at all)."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.hash import ELFHashSection, GNUHashSection

from leaktrace.errors import LeaktraceError
from leaktrace.exit_codes import PROGRAM_NOT_EXECUTABLE, PROGRAM_NOT_FOUND

DF_1_PIE = 0x08000000

# Sanitizer runtimes replace malloc themselves, in the executable or as a needed library.
_SANITIZERS = {
    "__asan_init": "AddressSanitizer", "__hwasan_init": "HWAddressSanitizer",
    "__tsan_init": "ThreadSanitizer", "__msan_init": "MemorySanitizer",
    "__lsan_init": "LeakSanitizer",
}
_SANITIZER_LIBRARIES = {
    "libasan.so": "AddressSanitizer", "libhwasan.so": "HWAddressSanitizer",
    "libtsan.so": "ThreadSanitizer", "liblsan.so": "LeakSanitizer",
    "libclang_rt.asan": "AddressSanitizer", "libclang_rt.hwasan": "HWAddressSanitizer",
    "libclang_rt.tsan": "ThreadSanitizer", "libclang_rt.msan": "MemorySanitizer",
}


def resolve_program(name: str) -> str:
    """The file that exec would run: a name without a slash is looked up in $PATH."""
    if "/" not in name:
        found = shutil.which(name)
        if found is None:
            raise LeaktraceError(f"program not found: {name} (not in PATH)",
                                 exit_code=PROGRAM_NOT_FOUND)
        return found
    if not os.path.exists(name):
        raise LeaktraceError(f"program not found: {name}", exit_code=PROGRAM_NOT_FOUND)
    if os.path.isdir(name):
        raise LeaktraceError(f"{name} is a directory, not a program",
                             exit_code=PROGRAM_NOT_EXECUTABLE)
    if not os.access(name, os.X_OK):
        raise LeaktraceError(f"{name} is not executable (chmod +x it, or check the mount)",
                             exit_code=PROGRAM_NOT_EXECUTABLE)
    return name


def check_traceable(program: str, shim: str) -> None:
    """Raise LeaktraceError when LD_PRELOAD would not bring the shim into `program`."""
    _check_privileges(program)
    target = _script_interpreter(program) or program
    elf = _read_elf(target)
    if elf is None:
        return  # not ELF: binfmt_misc or similar; let exec decide
    shown = program if target == program else f"{program} (its interpreter {target})"
    if not elf.has_interp and not (elf.soname or "").startswith("ld-"):
        kind = "statically linked (static-pie)" if elf.static_pie else "statically linked"
        raise LeaktraceError(f"{shown} is {kind}: the leaktrace shim cannot enter it "
                             "(it needs the dynamic loader); rebuild it dynamically linked")
    if elf.sanitizer:
        # Its runtime takes every allocation before the shim can see it: say so now rather
        # than report nothing. (A program that defines malloc itself runs, and is told so:
        # linkmap.c.)
        raise LeaktraceError(f"{shown} is built with {elf.sanitizer}, which replaces malloc "
                             "itself: the leaktrace shim would see no allocation; use the "
                             "sanitizer's own leak check (LeakSanitizer) or rebuild without it")
    shim_elf = _read_elf(shim)
    if shim_elf is not None and shim_elf.elf_class != elf.elf_class:
        raise LeaktraceError(f"{shown} is a {elf.elf_class}-bit program and the leaktrace shim "
                             f"is {shim_elf.elf_class}-bit: the loader would skip the shim")


def why_untraceable(program: str, shim: str) -> str | None:
    """What check_traceable would say of `program` (a file a traced process exec'd), or None
    when the shim can enter it or the file is gone."""
    try:
        check_traceable(program, shim)
    except LeaktraceError as e:
        return str(e)
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class _ElfFacts:
    elf_class: int  # 32 or 64
    has_interp: bool  # PT_INTERP: the dynamic loader runs it
    static_pie: bool
    soname: str | None
    sanitizer: str | None  # the sanitizer whose runtime it carries or needs


def _read_elf(path: str) -> _ElfFacts | None:
    """What the checks need from an ELF file, or None if it is not one. Each section is made
    once: pyelftools parses a section whole each time it is asked for, and a large program's
    symbol hash table is slow to parse (node's: 20 ms)."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            types = {seg["p_type"] for seg in elf.iter_segments()}
            flags_1, soname, needed = 0, None, []
            hash_tables: dict[str, GNUHashSection | ELFHashSection] = {}
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_FLAGS_1":
                            flags_1 = tag.entry.d_val
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = getattr(tag, "soname", None)
                        elif tag.entry.d_tag == "DT_NEEDED":
                            needed.append(getattr(tag, "needed", ""))
                elif isinstance(section, (GNUHashSection, ELFHashSection)):
                    hash_tables[section.name] = section
            has_interp = "PT_INTERP" in types
            static_pie = not has_interp and "PT_DYNAMIC" in types and bool(flags_1 & DF_1_PIE)
            table = hash_tables.get(".gnu.hash") or hash_tables.get(".hash")
            return _ElfFacts(elf.elfclass, has_interp, static_pie, soname,
                             _sanitizer(needed, table))
    except (OSError, ELFError, ValueError):
        return None


def _sanitizer(needed: list[str], table: GNUHashSection | ELFHashSection | None) -> str | None:
    """The sanitizer whose runtime is a needed library or defined in the dynamic symbol
    table (looked up through its hash table: a hundred thousand exported symbols cost no
    more)."""
    for library in needed:
        for prefix, sanitizer in _SANITIZER_LIBRARIES.items():
            if library.startswith(prefix):
                return sanitizer
    if table is None:
        return None
    for name, sanitizer in _SANITIZERS.items():
        symbol = table.get_symbol(name)
        if symbol is not None and symbol["st_shndx"] != "SHN_UNDEF":
            return sanitizer
    return None


def _check_privileges(program: str) -> None:
    st = os.stat(program)
    # The loader runs in secure mode (LD_PRELOAD ignored) when exec changes the real ids.
    if st.st_mode & stat.S_ISUID and st.st_uid != os.getuid():
        raise LeaktraceError(f"{program} is setuid (owner uid {st.st_uid}): the loader ignores "
                             "LD_PRELOAD for it; run a copy without the setuid bit")
    if st.st_mode & stat.S_ISGID and st.st_gid != os.getgid():
        raise LeaktraceError(f"{program} is setgid (group gid {st.st_gid}): the loader ignores "
                             "LD_PRELOAD for it; run a copy without the setgid bit")
    if os.getuid() != 0:
        try:
            os.getxattr(program, "security.capability")
        except OSError:
            return  # no file capabilities (or no xattr support): fine
        raise LeaktraceError(f"{program} has file capabilities: the loader ignores LD_PRELOAD "
                             "for it; run a copy without them")


def _script_interpreter(program: str) -> str | None:
    """For a '#!' script, the interpreter's path: that is the process the shim must enter."""
    try:
        with open(program, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].strip().split()
    return os.fsdecode(parts[0]) if parts and os.path.isfile(parts[0]) else None
