"""Signal trampolines: the C library's code a signal handler returns to, which asks the kernel
to resume the interrupted code (rt_sigreturn). A backtrace through a handler passes there; it
has no symbol a lookup at the return address - 1 finds (the unwind tables start its entry one
byte early, in padding), so reports name it as gdb does, "<signal handler called>", from its
code: `mov $15, %rax; syscall` (glibc's __restore_rt) or `mov $15, %eax; syscall` (musl's)."""

from __future__ import annotations

import functools
import struct

from leaktrace.errors import LeaktraceError
from leaktrace.input_files import open_regular

SIGNAL_FRAME_NAME = "<signal handler called>"
_SIGRETURN_CODES = (bytes.fromhex("48c7c00f0000000f05"), bytes.fromhex("b80f0000000f05"))
_PT_LOAD = 1
_MAX_HEADERS = 1 << 12


def is_signal_trampoline(path: str, address: int) -> bool:
    """Whether the code at `address` (the ELF file's virtual address) is a sigreturn
    trampoline. False for anything unreadable."""
    segments = _load_segments(path)
    for vaddr, offset, size in segments:
        if vaddr <= address < vaddr + size:
            return _code_at(path, offset + address - vaddr)
    return False


@functools.cache
def _load_segments(path: str) -> tuple[tuple[int, int, int], ...]:
    """(p_vaddr, p_offset, p_filesz) of each PT_LOAD of a 64-bit little-endian ELF file."""
    try:
        with open_regular(path, "ELF file") as f:
            header = f.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
                return ()
            phoff, = struct.unpack_from("<Q", header, 32)
            phentsize, phnum = struct.unpack_from("<HH", header, 54)
            if phentsize < 56 or phnum > _MAX_HEADERS:
                return ()
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            found = []
            for i in range(phnum):
                kind, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(
                    "<IIQQQQ", table, i * phentsize)
                if kind == _PT_LOAD:
                    found.append((vaddr, offset, filesz))
            return tuple(found)
    except (OSError, ValueError, struct.error, LeaktraceError):
        return ()


@functools.cache
def _code_at(path: str, offset: int) -> bool:
    try:
        with open_regular(path, "ELF file") as f:
            f.seek(offset)
            code = f.read(max(len(c) for c in _SIGRETURN_CODES))
    except (OSError, ValueError, LeaktraceError):
        return False
    return any(code.startswith(c) for c in _SIGRETURN_CODES)
