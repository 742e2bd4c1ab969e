"""Byte counts for people: '1.5 KiB (1,536 bytes)'."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int) -> str:
    """Binary units, as heaptrack and most C++ tools print them; exact below 1 KiB."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def size_with_bytes(n: int) -> str:
    """'1.5 KiB (1,536 bytes)', or '24 bytes' when the short form would say the same."""
    if n < 1024:
        return f"{n:,} byte" + ("" if n == 1 else "s")
    return f"{human_size(n)} ({n:,} bytes)"
