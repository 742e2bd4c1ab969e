"""glibc's mallinfo2() through ctypes: snapshots of the malloc heap and their differences.

mallinfo2 (glibc 2.33+) is mallinfo with size_t fields, so counts above 4 GiB do not wrap.
It covers the main arena and every thread arena. "In use" is uordblks (bytes in allocated
chunks, headers included) plus hblkhd (bytes in blocks malloc got straight from mmap)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from leaktrace.errors import LeaktraceError

# struct mallinfo2, in order (see `man 3 mallinfo`)
MALLINFO2_FIELDS = (
    "arena",  # bytes from sbrk for the heap (non-mmapped space)
    "ordblks",  # free chunks
    "smblks",  # free fastbin chunks
    "hblks",  # blocks allocated with mmap
    "hblkhd",  # bytes in blocks allocated with mmap
    "usmblks",  # always 0
    "fsmblks",  # bytes in free fastbin chunks
    "uordblks",  # bytes in chunks in use
    "fordblks",  # bytes in free chunks
    "keepcost",  # releasable bytes at the top of the heap
)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]


class HeapUnavailableError(LeaktraceError):
    """This process's C library has no mallinfo2 (not glibc, or glibc older than 2.33)."""


def _libc_description() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "an unknown C library"
    except (ValueError, OSError):
        return "a C library that is not glibc"


@cache
def _mallinfo2() -> Any:
    return load_mallinfo2(ctypes.CDLL(None))


def load_mallinfo2(libc: Any) -> Any:
    """The mallinfo2 function of `libc` (a ctypes library), ready to call."""
    function = getattr(libc, "mallinfo2", None)
    if function is None:
        raise HeapUnavailableError(
            f"mallinfo2() is not available in this process's C library ({_libc_description()}); "
            "leaktrace.heap needs glibc 2.33 or newer"
        )
    function.restype = _Mallinfo2
    function.argtypes = []
    return function


@dataclass(frozen=True)
class HeapDelta:
    """The difference of two snapshots, field by field (negative when a field shrank)."""

    arena: int
    ordblks: int
    smblks: int
    hblks: int
    hblkhd: int
    usmblks: int
    fsmblks: int
    uordblks: int
    fordblks: int
    keepcost: int

    @property
    def in_use(self) -> int:
        """Change in bytes of allocated memory (uordblks + hblkhd)."""
        return self.uordblks + self.hblkhd


@dataclass(frozen=True)
class HeapSnapshot(HeapDelta):
    """mallinfo2() at one moment. Subtract two snapshots for a HeapDelta."""

    def __sub__(self, earlier: HeapSnapshot) -> HeapDelta:
        return HeapDelta(
            **{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)}
        )


def snapshot() -> HeapSnapshot:
    """The malloc heap's state now. Raises HeapUnavailableError without mallinfo2."""
    info = _mallinfo2()()
    return HeapSnapshot(**{name: int(getattr(info, name)) for name in MALLINFO2_FIELDS})
