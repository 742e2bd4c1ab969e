"""Where the XSAVE components lie in the standard (ptrace, signal frame) layout, from CPUID
leaf 0xD, run here through a few bytes of machine code (Python has no CPUID of its own)."""

from __future__ import annotations

import ctypes
import functools
import mmap
from collections.abc import Callable

# push %rbx; mov %edi,%eax; mov %esi,%ecx; mov %rdx,%r8; cpuid;
# mov %eax,(%r8); mov %ebx,4(%r8); mov %ecx,8(%r8); mov %edx,12(%r8); pop %rbx; ret
_CPUID_CODE = bytes.fromhex("53" "89f8" "89f1" "4989d0" "0fa2" "418900" "41895804"
                            "41894808" "4189500c" "5b" "c3")
_Cpuid = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32,
                          ctypes.POINTER(ctypes.c_uint32 * 4))
XSTATE_LEAF = 0xD
LEGACY_AND_HEADER = 576  # the legacy area and the XSAVE header come first, always


@functools.cache
def _cpuid_function() -> Callable[..., None] | None:
    """The code in a page of its own, written then made executable (never both at once);
    None where the system forbids that."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if page in (None, ctypes.c_void_p(-1).value):
        return None
    ctypes.memmove(page, _CPUID_CODE, len(_CPUID_CODE))
    if libc.mprotect(page, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        return None
    function: Callable[..., None] = _Cpuid(page)
    return function


def _cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int] | None:
    function = _cpuid_function()
    if function is None:
        return None
    out = (ctypes.c_uint32 * 4)()
    function(leaf, subleaf, ctypes.byref(out))
    return out[0], out[1], out[2], out[3]


@functools.cache
def user_components() -> dict[int, tuple[int, int]]:
    """(offset, size) of each user state component the CPU has (AVX, AVX-512, PKRU, AMX...),
    by its number (2 and up: x87 and SSE are in the legacy area); empty if CPUID cannot run."""
    main = _cpuid(XSTATE_LEAF, 0)
    if main is None:
        return {}
    supported = main[0] | main[3] << 32  # EDX:EAX, the components XCR0 may enable
    components = {}
    for number in range(2, 64):
        if supported >> number & 1:
            leaf = _cpuid(XSTATE_LEAF, number)
            assert leaf is not None
            size, offset = leaf[0], leaf[1]
            if size:
                components[number] = (offset, size)
    return components
