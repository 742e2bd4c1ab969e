"""What /proc says about a process attach is aimed at: its threads, their state and tracer,
its owner, its memory map, the ELF machine of its executable."""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass

from leaktrace.proc_view import proc_dir

EM_X86_64 = 62
ELF_MACHINES = {3: "32-bit x86", 40: "ARM", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}


DELETED = " (deleted)"  # /proc/PID/maps's mark of a mapped file no longer on disk


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str  # "r-xp"
    offset: int
    path: str  # "" for anonymous memory; "[stack]", "[vdso]"... for the kernel's

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    @property
    def file_name(self) -> str:
        """The file's name, also when the kernel marks it " (deleted)": a library replaced
        since it was loaded (a package upgrade) is still that library, and must be found as
        such (target_libraries refuses to read another file's symbols for it)."""
        return os.path.basename(self.path.removesuffix(DELETED))


_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \d+\s*(.*)$")


class MemoryMap:
    """/proc/PID/maps, sorted by address."""

    def __init__(self, mappings: list[Mapping]) -> None:
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self._starts = [m.start for m in self.mappings]

    @classmethod
    def read(cls, pid: int) -> MemoryMap:
        mappings = []
        with open(f"{proc_dir(pid)}/maps", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                m = _MAPS_LINE.match(line.rstrip("\n"))
                if m:
                    mappings.append(Mapping(int(m[1], 16), int(m[2], 16), m[3], int(m[4], 16),
                                            m[5]))
        return cls(mappings)

    def containing(self, address: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None

    def of_file(self, predicate: re.Pattern[str]) -> list[Mapping]:
        """The mappings of the first file whose name matches `predicate`."""
        for m in self.mappings:
            if m.path.startswith("/") and predicate.search(m.file_name):
                return [n for n in self.mappings if n.path == m.path]
        return []


def thread_ids(pid: int) -> list[int]:
    """The process's threads, the main thread first."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if t.isdigit())
    except FileNotFoundError:
        return []
    return sorted(tids, key=lambda t: t != pid)


def status_fields(pid: int, tid: int | None = None) -> dict[str, str]:
    """/proc/PID/status (or one thread's) as a dict: "State", "TracerPid", "Uid"..."""
    path = f"/proc/{pid}/status" if tid is None else f"/proc/{pid}/task/{tid}/status"
    fields = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def current_syscall(pid: int, tid: int) -> int | None:
    """The system call thread `tid` is blocked in (x86-64 number), None if it is running
    user code or we may not look."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall", encoding="ascii") as f:
            first = f.read().split(maxsplit=1)
    except OSError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


def real_uid(pid: int) -> int:
    return int(status_fields(pid)["Uid"].split()[0])


def real_gid(pid: int) -> int:
    return int(status_fields(pid)["Gid"].split()[0])


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "?"


def elf_machine(path: str) -> tuple[int, int] | None:
    """(EI_CLASS: 1 = 32-bit, 2 = 64-bit; e_machine) of an ELF file, None if not ELF."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = header[18:20]
    return header[4], int.from_bytes(machine, "little" if header[5] == 1 else "big")


def is_go_executable(path: str) -> bool:
    """Whether `path` is a Go executable: Go's build id note or build info section, which
    stripped builds keep too (the shim looks for the same, shim/go_exit.c)."""
    from elftools.common.exceptions import ELFError  # only attach needs it
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            return any(elf.get_section_by_name(name) is not None
                       for name in (".note.go.buildid", ".go.buildinfo"))
    except (OSError, ELFError, ValueError):
        return False


def same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
