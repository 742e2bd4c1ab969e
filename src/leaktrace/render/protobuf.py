"""The few protocol-buffer wire-format writes that profile.proto needs (varints and
length-delimited fields); a protobuf library and generated code would be far bigger than
these lines."""

from __future__ import annotations

from collections.abc import Iterable

_VARINT = 0
_LENGTH_DELIMITED = 2


def varint(value: int) -> bytes:
    """Unsigned LEB128; negative int64 values take ten bytes, two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Message:
    """A message under construction: fields appended in the order written."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def integer(self, field: int, value: int) -> Message:
        """An int64/uint64/bool field; zero is the default and is left out."""
        if value:
            self._parts.append(varint(field << 3 | _VARINT) + varint(value))
        return self

    def packed(self, field: int, values: Iterable[int]) -> Message:
        """A repeated integer field, packed (what proto3 readers expect)."""
        body = b"".join(varint(v) for v in values)
        if body:
            self.raw(field, body)
        return self

    def raw(self, field: int, value: bytes) -> Message:
        self._parts.append(varint(field << 3 | _LENGTH_DELIMITED) + varint(len(value)) + value)
        return self

    def string(self, field: int, value: str) -> Message:
        """A string field, written even when empty (a string table's entry 0 is "")."""
        return self.raw(field, value.encode("utf-8", "surrogateescape"))

    def message(self, field: int, value: Message) -> Message:
        return self.raw(field, value.encode())

    def encode(self) -> bytes:
        return b"".join(self._parts)
