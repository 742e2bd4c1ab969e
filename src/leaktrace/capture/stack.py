"""One STACKS entry as Python values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stack:
    stack_id: int
    alloc_count: int
    alloc_bytes: int
    free_count: int
    freed_bytes: int
    live_blocks: int
    live_bytes: int
    return_addresses: tuple[int, ...]  # innermost first
