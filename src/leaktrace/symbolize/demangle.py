"""Demangle C++ (and legacy Rust) symbol names without binutils, for the ELF-symbol fallback:
libstdc++'s own __cxa_demangle through ctypes."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.cache
def _cxa_demangle() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("stdc++") or "libstdc++.so.6"
    try:
        lib = ctypes.CDLL(name)
        fn = lib.__cxa_demangle
        libc = ctypes.CDLL(None)
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                   ctypes.POINTER(ctypes.c_int)]
    libc.free.argtypes = [ctypes.c_void_p]
    fn.free = libc.free  # type: ignore[attr-defined]
    return fn


def demangle(symbol: str) -> str:
    """The readable name, or the symbol unchanged when it is not mangled or cannot be."""
    if not symbol.startswith("_Z"):
        return symbol
    fn = _cxa_demangle()
    if fn is None:
        return symbol
    status = ctypes.c_int(0)
    pointer = fn(os.fsencode(symbol), None, None, ctypes.byref(status))
    if status.value != 0 or not pointer:
        return symbol
    try:
        text = ctypes.string_at(pointer).decode("utf-8", "replace")
    finally:
        fn.free(pointer)  # type: ignore[attr-defined]
    return text
