"""Regenerates tests/data/capture-v1.lt, the sample version-1 capture the tests parse:

    PYTHONPATH=src python3 tests/data/make_sample.py

It is written with leaktrace.capture.writer (not the shim) so that its content is exactly
known: two modules (one unloaded), three stacks, six live blocks, counters. The module paths
do not exist on purpose: the frames stay module+offset whatever machine reads it."""

from __future__ import annotations

from pathlib import Path

from leaktrace.capture.reader import BlockRow, Module, ProcessInfo
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


def sample_bytes() -> bytes:
    modules = [
        Module(EXE_BIAS, EXE_BIAS + 0x1000, EXE_BIAS + 0x5000, False, bytes.fromhex("aabbccdd"),
               EXE),
        Module(LIB_BIAS, LIB_BIAS + 0x1000, LIB_BIAS + 0x9000, True, b"", LIB),
    ]
    stacks = [
        stack_from_blocks(1, [EXE_BIAS + 0x1234, EXE_BIAS + 0x1400], BLOCKS, freed=(10, 5000)),
        stack_from_blocks(2, [LIB_BIAS + 0x2345, EXE_BIAS + 0x1410], BLOCKS),
        stack_from_blocks(3, [EXE_BIAS + 0x1500, 0x10], BLOCKS),  # 0x10: in no module
    ]
    process = ProcessInfo(1, EXE, [EXE, "--leak", "3"], "/opt/sample")
    counters = {"dropped_blocks": 0, "dropped_stacks": 0, "truncated_stacks": 1,
                "unknown_frees": 2, "max_depth": 64}
    return encode_capture(make_header(4242), process=process, modules=modules, stacks=stacks,
                          blocks=BLOCKS, counters=counters)


if __name__ == "__main__":
    out = Path(__file__).with_name("capture-v1.lt")
    out.write_bytes(sample_bytes())
    print(f"wrote {out}")
