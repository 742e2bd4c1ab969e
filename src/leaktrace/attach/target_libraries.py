"""The libraries of the target that attach cares about, located through /proc/PID/maps: libc
(dlopen, and the allocator an injected call must not interrupt), the dynamic loader, and the
shim once it is loaded. Files are read through /proc/PID/root, i.e. as the target sees them."""

from __future__ import annotations

import bisect
import os
import re
import struct
from dataclasses import dataclass, field

from leaktrace.attach.elf_functions import ElfFunctions, read_functions
from leaktrace.attach.process_info import DELETED, Mapping, MemoryMap
from leaktrace.errors import LeaktraceError
from leaktrace.proc_view import proc_dir

LIBC = re.compile(r"^libc(\.so\.6|-2\.\d+\.so)$")
LOADER = re.compile(r"^ld-linux-x86-64\.so\.2$|^ld-2\.\d+\.so$")
# glibc < 2.34 kept dlopen and pthread_create in these (merged into libc since).
OLD_LIBDL = re.compile(r"^libdl(\.so\.2|-2\.\d+\.so)$")
OLD_LIBPTHREAD = re.compile(r"^libpthread(\.so\.0|-2\.\d+\.so)$")
SHIM = re.compile(r"^libleaktrace_shim\.so$")
PT_NOTE = 4
NT_GNU_BUILD_ID = 3

# libc functions a thread must not be inside when it is made to call dlopen: they hold the
# allocator's arena locks or the loader's locks (dlopen allocates and takes the latter), or
# run on a stack shared with a vfork child. Internal names only exist with a .symtab.
UNSAFE_LIBC_FUNCTIONS = (
    "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
    "aligned_alloc", "valloc", "pvalloc", "cfree", "malloc_trim", "malloc_usable_size",
    "malloc_stats", "malloc_info", "mallinfo", "mallinfo2", "mallopt",
    "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
    "__libc_valloc", "__libc_pvalloc", "__posix_memalign", "__malloc_fork_lock_parent",
    "__malloc_fork_unlock_parent", "__malloc_fork_unlock_child", "_int_malloc", "_int_free",
    "_int_realloc", "_int_memalign", "malloc_consolidate", "sysmalloc", "tcache_init",
    "arena_get2", "__libc_thread_freeres",
    "dlopen", "dlclose", "dlsym", "dlvsym", "dlmopen", "dladdr", "dladdr1", "dlinfo",
    "dlerror", "dl_iterate_phdr", "_dl_catch_exception", "_dl_catch_error",
    "__libc_dlopen_mode", "__libc_dlsym", "__libc_dlvsym", "__libc_dlclose",
    "fork", "_Fork", "__libc_fork", "vfork", "posix_spawn", "posix_spawnp", "system",
    "popen", "pthread_create", "exit", "__run_exit_handlers",
)


@dataclass
class LoadedLibrary:
    path: str  # as the target sees it
    mappings: list[Mapping]
    root: str  # /proc/PID/root: where to read the file from
    _functions: ElfFunctions | None = field(default=None, repr=False)

    @property
    def functions(self) -> ElfFunctions:
        if self._functions is None:
            self._functions = read_functions(self.root + self.path)
        return self._functions

    @property
    def load_bias(self) -> int:
        first = min((m for m in self.mappings if m.offset == 0), key=lambda m: m.start,
                    default=self.mappings[0])
        return first.start - (self.functions.first_load_vaddr & ~0xFFF)

    def address_of(self, name: str) -> int | None:
        offset = self.functions.address(name)
        return None if offset is None else self.load_bias + offset

    def text_ranges(self) -> list[tuple[int, int]]:
        return [(m.start, m.end) for m in self.mappings if m.executable]


def find_library(pid: int, memory: MemoryMap, name: re.Pattern[str],
                 functions: ElfFunctions | None = None) -> LoadedLibrary | None:
    """`functions`: the file's symbols when already read (no second read)."""
    mappings = memory.of_file(name)
    if not mappings:
        return None
    path = mappings[0].path
    root = f"{proc_dir(pid)}/root"
    if path.endswith(DELETED):
        # Replaced since it was loaded: the symbols are read from the file there now, which
        # must be the same build (the offsets of another one are not the loaded copy's: a
        # call at one of them crashes the target; and dlopen of that path returns the copy).
        path = path.removesuffix(DELETED)
        if _mapped_build_id(pid, mappings) is None or (
                _file_build_id(root + path) != _mapped_build_id(pid, mappings)):
            raise LeaktraceError(
                f"process {pid} runs a copy of {path} that was replaced by another build since "
                "it was loaded (a package upgrade, or leaktrace reinstalled?): restart the "
                "process, then attach")
    return LoadedLibrary(path, mappings, root, functions)


def _file_build_id(path: str) -> bytes | None:
    from leaktrace.symbolize.elf_info import read_elf_info
    info = read_elf_info(path)
    return info.build_id if info else None


def _mapped_build_id(pid: int, mappings: list[Mapping]) -> bytes | None:
    """The GNU build id of a loaded ELF object, read from the target's memory: its ELF
    header is where the mapping of file offset 0 starts, and the note segment lies in that
    mapping (where linkers put it)."""
    first = next((m for m in mappings if m.offset == 0), None)
    if first is None:
        return None
    try:
        fd = os.open(f"{proc_dir(pid)}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        size = first.end - first.start
        header = os.pread(fd, 64, first.start)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None  # 64-bit little-endian only, like the shim
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        if phentsize < 56 or phnum > 64 or phoff + phentsize * phnum > size:
            return None
        table = os.pread(fd, phentsize * phnum, first.start + phoff)
        for i in range(phnum):
            kind, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
            if kind != PT_NOTE or offset + filesz > size or filesz > 1 << 16:
                continue
            notes = os.pread(fd, filesz, first.start + offset)
            at = 0
            while at + 12 <= len(notes):
                namesz, descsz, note_type = struct.unpack_from("<III", notes, at)
                desc_at = at + 12 + (namesz + 3) // 4 * 4
                if note_type == NT_GNU_BUILD_ID and notes[at + 12:at + 12 + namesz] == b"GNU\0":
                    return notes[desc_at:desc_at + descsz]
                at = desc_at + (descsz + 3) // 4 * 4
        return None
    except OSError:
        return None
    finally:
        os.close(fd)


class UnsafeCode:
    """Address ranges a thread must not be executing, or be called from, when injected into.
    Overlapping ranges (aliases such as malloc and __libc_malloc) are merged, so a lookup is
    one bisection: the stack scan asks about thousands of words."""

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.labels: list[str] = []
        for start, end, what in sorted(ranges):
            if self.ends and start < self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
                continue
            self.starts.append(start)
            self.ends.append(end)
            self.labels.append(what)

    def find(self, address: int) -> str | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.ends[i]:
            return self.labels[i]
        return None


def unsafe_code(pid: int, memory: MemoryMap, libc: LoadedLibrary) -> UnsafeCode:
    ranges: list[tuple[int, int, str]] = []
    bias = libc.load_bias
    for name in UNSAFE_LIBC_FUNCTIONS:
        entry = libc.functions.functions.get(name)
        if entry and entry[1]:
            ranges.append((bias + entry[0], bias + entry[0] + entry[1], f"libc's {name}"))
    for pattern, what in ((LOADER, "the dynamic loader"), (SHIM, "the leaktrace shim"),
                          (OLD_LIBDL, "libdl"), (OLD_LIBPTHREAD, "libpthread")):
        library = find_library(pid, memory, pattern)
        if library is not None:
            ranges.extend((start, end, what) for start, end in library.text_ranges())
    return UnsafeCode(ranges)
