"""Bounds-checked little-endian reads over one section's payload."""

from __future__ import annotations

import struct

from leaktrace.capture.errors import CaptureError

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Cursor:
    """Reads fields in order from `data`; any read past its end is a corrupt capture."""

    def __init__(self, data: memoryview, where: str) -> None:
        self.data = data
        self.pos = 0
        self.where = where  # e.g. "capture.lt: MODULES section", for error messages

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.remaining():
            raise CaptureError(
                f"{self.where} is corrupt: {what} needs {n} bytes but only "
                f"{self.remaining()} remain in the section"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack(self.take(8, what))[0])

    def string(self, what: str) -> bytes:
        """A `str` field: u32 length, then that many bytes."""
        length = self.u32(f"{what} length")
        return bytes(self.take(length, what))

    def count(self, what: str, item_size: int, wide: bool = False) -> int:
        """An item count, rejected early if the items could not fit in what is left."""
        n = self.u64(what) if wide else self.u32(what)
        if n * item_size > self.remaining():
            raise CaptureError(
                f"{self.where} is corrupt: {what} {n} cannot fit in the "
                f"{self.remaining()} bytes left in the section"
            )
        return n
