"""In-process heap checks on glibc's mallinfo2(), for tests of native code (C extensions,
ctypes/cffi libraries): take snapshots, subtract them, or fail a block of code whose heap
usage grows.

    from leaktrace import heap

    before = heap.snapshot()
    ...
    print((heap.snapshot() - before).in_use)

    @heap.growth_limit(max_bytes=0, repeat=20, warmup=2)
    def test_parser_frees_everything(): ...
"""

from leaktrace.heap.guard import HeapGrowthError, check_growth, growth_limit
from leaktrace.heap.mallinfo import (
    MALLINFO2_FIELDS,
    HeapDelta,
    HeapSnapshot,
    HeapUnavailableError,
    snapshot,
)

__all__ = [
    "MALLINFO2_FIELDS",
    "HeapDelta",
    "HeapGrowthError",
    "HeapSnapshot",
    "HeapUnavailableError",
    "check_growth",
    "growth_limit",
    "snapshot",
]
