"""leaktrace.heap: mallinfo2 snapshots around real native allocations made through ctypes.

Block sizes are above glibc's tcache range (1032 bytes): chunks cached in a tcache count as
"in use" for mallinfo, so a small malloc served from it would not change the numbers."""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leaktrace import heap
from leaktrace.heap.mallinfo import load_mallinfo2

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.free.restype = None

MMAP_THRESHOLD = 128 * 1024  # glibc's default: bigger blocks get their own mmap
# The numbers are the whole test process's: the interpreter itself may malloc a few bytes
# during a measured block (a dict or list past pymalloc's 512-byte limit growing, for one),
# depending on what earlier tests left in it. Seen: 16 bytes. (Frees, by a garbage
# collection, are kept out: no_garbage_collection.)
INTERPRETER_SLACK = 256


def assert_grew_by(grown: int, expected: int) -> None:
    assert expected <= grown <= expected + INTERPRETER_SLACK, (grown, expected)


def chunk_size(request: int) -> int:
    """The size glibc's malloc gives a heap chunk for `request` bytes (8-byte header,
    16-byte alignment) on 64-bit glibc."""
    return max(32, (request + 8 + 15) // 16 * 16)


@pytest.fixture(autouse=True)
def no_garbage_collection() -> Iterator[None]:
    """No collection in the middle of a measurement: a collection frees whatever cyclic
    garbage earlier tests left, and the heap shrank by 8 KiB during one (in a full run)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def blocks() -> Iterator[list[int]]:
    """Pointers to free at the end of the test; preallocated so that growing the list
    itself does not call malloc in the middle of a measurement."""
    pointers = [0] * 2000
    yield pointers
    for pointer in pointers:
        if pointer:
            libc.free(pointer)


def test_snapshot_fields() -> None:
    snap = heap.snapshot()
    assert set(heap.MALLINFO2_FIELDS) <= set(vars(snap))
    assert snap.in_use == snap.uordblks + snap.hblkhd
    assert snap.arena >= snap.uordblks > 0


def test_heap_allocations_change_uordblks_exactly(blocks: list[int]) -> None:
    before = heap.snapshot()
    for index in range(1000):
        blocks[index] = libc.malloc(2000)
    after = heap.snapshot()
    delta = after - before
    assert isinstance(delta, heap.HeapDelta)
    assert_grew_by(delta.uordblks, 1000 * chunk_size(2000))
    assert delta.hblks == 0 and delta.hblkhd == 0
    assert_grew_by(delta.in_use, 1000 * chunk_size(2000))

    for index in range(1000):
        libc.free(blocks[index])
        blocks[index] = 0
    assert abs((heap.snapshot() - before).in_use) <= INTERPRETER_SLACK


def test_mmapped_blocks_count_in_hblkhd(blocks: list[int]) -> None:
    before = heap.snapshot()
    blocks[0] = libc.malloc(10 << 20)
    delta = heap.snapshot() - before
    assert delta.hblks == 1
    page = 4096
    assert delta.hblkhd == ((10 << 20) + 16 + page - 1) // page * page
    assert delta.in_use == delta.hblkhd
    libc.free(blocks[0])
    blocks[0] = 0
    assert (heap.snapshot() - before).hblks == 0


def test_context_manager_fails_on_growth(blocks: list[int]) -> None:
    with pytest.raises(heap.HeapGrowthError) as failure:  # noqa: SIM117 - clearer apart
        with heap.growth_limit(max_bytes=1000):
            for index in range(50):
                blocks[index] = libc.malloc(4000)
    message = str(failure.value)
    grown = failure.value.delta.uordblks
    assert_grew_by(grown, 50 * chunk_size(4000))
    assert f"grew by {grown:,} bytes over the block" in message
    assert "allowed: 1,000" in message
    assert isinstance(failure.value, AssertionError)


def test_context_manager_passes_when_everything_is_freed() -> None:
    with heap.growth_limit() as limit:
        pointer = libc.malloc(5000)
        libc.free(pointer)
    assert limit.delta is not None and limit.delta.in_use == 0


def test_context_manager_tolerates_growth_within_the_limit(blocks: list[int]) -> None:
    with heap.growth_limit(max_bytes=chunk_size(3000) + INTERPRETER_SLACK) as limit:
        blocks[0] = libc.malloc(3000)
    # The growth was seen, and tolerated: not a check that measured nothing.
    assert limit.delta is not None
    assert chunk_size(3000) <= limit.delta.in_use <= chunk_size(3000) + INTERPRETER_SLACK


def test_decorator_repeats_and_ignores_warm_up(blocks: list[int]) -> None:
    cache: list[int] = []

    @heap.growth_limit(max_bytes=0, repeat=5, warmup=1)
    def uses_a_cache() -> str:
        if not cache:  # a one-time allocation, like a C extension's lazily built table
            cache.append(libc.malloc(8000))
            blocks[0] = cache[0]
        return "done"

    assert uses_a_cache() == "done"


PER_CALL_GROWTH_PROGRAM = """
import ctypes, gc
from leaktrace import heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
blocks = [0] * 8
calls = iter(range(len(blocks)))
gc.disable()

@heap.growth_limit(max_bytes=0, repeat=4, warmup=1)
def leaks_every_call():
    blocks[next(calls)] = libc.malloc(2000)

try:
    leaks_every_call()
except heap.HeapGrowthError as failure:
    print(failure)
"""


def test_decorator_reports_per_call_growth() -> None:
    # In a fresh interpreter: the exact figures would otherwise include whatever pytest's
    # own threads (xdist's I/O thread) malloc while the four calls run.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src"))
    result = subprocess.run(
        [sys.executable, "-c", PER_CALL_GROWTH_PROGRAM],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert f"grew by {4 * chunk_size(2000):,} bytes over 4 calls of" in result.stdout
    assert f"({chunk_size(2000):,.1f} bytes per run)" in result.stdout


def test_check_growth_function(blocks: list[int]) -> None:
    def leak() -> int:
        blocks[1] = libc.malloc(2000)
        return 7

    with pytest.raises(heap.HeapGrowthError):
        heap.check_growth(leak)
    balanced = heap.check_growth(lambda: libc.free(libc.malloc(2000)) or 3, repeat=10)
    assert balanced == 3


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="repeat >= 1"):
        heap.growth_limit(repeat=0)


def test_libc_without_mallinfo2_gives_a_clear_error() -> None:
    class OldLibc:  # a C library with no mallinfo2 symbol
        pass

    with pytest.raises(heap.HeapUnavailableError, match=r"mallinfo2\(\) is not available"):
        load_mallinfo2(OldLibc())


def test_exception_in_block_is_not_masked(blocks: list[int]) -> None:
    with pytest.raises(KeyError), heap.growth_limit():
        blocks[0] = libc.malloc(4000)
        raise KeyError("original")


def test_usable_from_a_fresh_interpreter() -> None:
    code = "from leaktrace import heap; s = heap.snapshot(); print(type(s).__name__, s.in_use > 0)"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src"))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "HeapSnapshot True"
