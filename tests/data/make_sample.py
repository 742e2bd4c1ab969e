"""Regenerates the sample captures the tests parse, one per format version:

    PYTHONPATH=src python3 tests/data/make_sample.py

writes tests/data/capture-v1.lt and tests/data/capture-v2.lt. They are written with
leaktrace.capture.writer (not the shim) so that their content is exactly known. The module
paths do not exist on purpose: the frames stay module+offset whatever machine reads them.

capture-v1.lt: two modules (one unloaded), three stacks, six live blocks, counters.
capture-v2.lt: the same process after a reachability scan: every leak kind, a definitely lost
block that owns two indirectly lost ones (LEAK_GROUPS), a block kept reachable by the
stdstring heuristic, mappings (mmap, brk) that the scan leaves alone, and the SCAN section."""

from __future__ import annotations

from pathlib import Path

from leaktrace.capture import format as fmt
from leaktrace.capture.reader import BlockRow, LeakGroupRow, Module, ProcessInfo, ScanStats
from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks

EXE = "/opt/sample/bin/leaky"
LIB = "/opt/sample/lib/libplugin.so"
EXE_BIAS = 0x555555554000
LIB_BIAS = 0x7FFFF7000000

BLOCKS = [
    BlockRow(0x5555555A0010, 4096, 1, 1, 100_000_000),
    BlockRow(0x5555555A2010, 4096, 1, 1, 200_000_000),
    BlockRow(0x5555555A4010, 1024, 1, 2, 300_000_000),  # same stack, calloc: its own record
    BlockRow(0x5555555B0010, 100, 2, 1, 1_500_000_000),
    BlockRow(0x7FFFF0000000, 65536, 3, 10, 50_000_000),
    BlockRow(0x5555555C0010, 24, 0, 1, 1_900_000_000),  # no backtrace
]

DEFINITE = fmt.LEAK_DEFINITELY_LOST
INDIRECT = fmt.LEAK_INDIRECTLY_LOST
POSSIBLE = fmt.LEAK_POSSIBLY_LOST
REACHABLE = fmt.LEAK_STILL_REACHABLE
STDSTRING = 1

# (address, size, stack, kind, time, leak kind, heuristic)
SCANNED_BLOCKS = [
    # stack 1: two definitely lost blocks, the first owning 0x...B0010 and 0x...B0030
    BlockRow(0x5555555A0010, 16, 1, 1, 100_000_000, DEFINITE),
    BlockRow(0x5555555A0030, 16, 1, 1, 110_000_000, DEFINITE),
    BlockRow(0x5555555B0010, 16, 2, 1, 120_000_000, INDIRECT),
    BlockRow(0x5555555B0030, 16, 2, 1, 130_000_000, INDIRECT),
    # stack 3: one record per leak kind
    BlockRow(0x5555555C0010, 100, 3, 2, 200_000_000, POSSIBLE),
    BlockRow(0x5555555C1010, 57, 3, 2, 210_000_000, REACHABLE, STDSTRING),
    BlockRow(0x5555555C2010, 24, 3, 2, 220_000_000, REACHABLE),
    BlockRow(0x5555555D0010, 8, 0, 1, 300_000_000, DEFINITE),  # no backtrace
    # memory mappings: never scanned
    BlockRow(0x7FFFF0000000, 65536, 4, 10, 50_000_000),
    BlockRow(0x555555600000, 4096, 0, 12, 60_000_000),
]
LEAK_GROUPS = [LeakGroupRow(0x5555555A0010, 32, 2)]
SCAN = ScanStats(duration_ns=1_234_567, bytes_scanned=1_048_576, root_bytes=65_536,
                 threads_stopped=1, threads_not_stopped=0, heuristics_mask=0b11110)


def _modules() -> list[Module]:
    return [
        Module(EXE_BIAS, EXE_BIAS + 0x1000, EXE_BIAS + 0x5000, False, bytes.fromhex("aabbccdd"),
               EXE),
        Module(LIB_BIAS, LIB_BIAS + 0x1000, LIB_BIAS + 0x9000, True, b"", LIB),
    ]


def sample_bytes() -> bytes:
    """Version 1."""
    stacks = [
        stack_from_blocks(1, [EXE_BIAS + 0x1234, EXE_BIAS + 0x1400], BLOCKS, freed=(10, 5000)),
        stack_from_blocks(2, [LIB_BIAS + 0x2345, EXE_BIAS + 0x1410], BLOCKS),
        stack_from_blocks(3, [EXE_BIAS + 0x1500, 0x10], BLOCKS),  # 0x10: in no module
    ]
    process = ProcessInfo(1, EXE, [EXE, "--leak", "3"], "/opt/sample")
    counters = {"dropped_blocks": 0, "dropped_stacks": 0, "truncated_stacks": 1,
                "unknown_frees": 2, "max_depth": 64}
    return encode_capture(make_header(4242, version=1), process=process, modules=_modules(),
                          stacks=stacks, blocks=BLOCKS, counters=counters)


def sample_v2_bytes() -> bytes:
    stacks = [
        stack_from_blocks(1, [EXE_BIAS + 0x1234, EXE_BIAS + 0x1400], SCANNED_BLOCKS,
                          freed=(10, 5000)),
        stack_from_blocks(2, [LIB_BIAS + 0x2345, EXE_BIAS + 0x1410], SCANNED_BLOCKS),
        stack_from_blocks(3, [EXE_BIAS + 0x1500, EXE_BIAS + 0x1410], SCANNED_BLOCKS),
        stack_from_blocks(4, [EXE_BIAS + 0x1600, 0x10], SCANNED_BLOCKS),  # 0x10: in no module
    ]
    process = ProcessInfo(1, EXE, [EXE, "--leak", "3"], "/opt/sample")
    counters = {"dropped_blocks": 0, "dropped_stacks": 0, "truncated_stacks": 0,
                "unknown_frees": 0, "max_depth": 64, "skipped_shards": 0}
    return encode_capture(make_header(4343, version=2), process=process, modules=_modules(),
                          stacks=stacks, blocks=SCANNED_BLOCKS, counters=counters, scan=SCAN,
                          leak_groups=LEAK_GROUPS)


if __name__ == "__main__":
    for name, data in (("capture-v1.lt", sample_bytes()), ("capture-v2.lt", sample_v2_bytes())):
        out = Path(__file__).with_name(name)
        out.write_bytes(data)
        print(f"wrote {out}")
