"""The capture reader: the sample file, round trips through the test writer, and a clear
one-line CaptureError for every kind of bad file."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from leaktrace.capture import CaptureError, read_capture
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import (
    BlockRow,
    LeakGroupRow,
    Module,
    ProcessInfo,
    ScanStats,
    parse_capture,
)
from leaktrace.capture.stack_table import StackTable
from leaktrace.capture.writer import (
    encode_blocks,
    encode_capture,
    encode_end,
    encode_header,
    make_header,
    stack_from_blocks,
)

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "capture-v1.lt"
SAMPLE_V2 = DATA / "capture-v2.lt"


def small_capture(**overrides: object) -> bytes:
    blocks = [BlockRow(0x1000, 64, 7, 1, 10), BlockRow(0x2000, 32, 7, 2, 20)]
    parts: dict[str, object] = {
        "process": ProcessInfo(1, "/bin/prog", ["prog", "a b", ""], "/tmp"),
        "modules": [Module(0x400000, 0x401000, 0x402000, False, b"\x01\x02", "/bin/prog")],
        "stacks": [stack_from_blocks(7, [0x401234, 0x401500], blocks)],
        "blocks": blocks,
        "counters": {"dropped_blocks": 0, "max_depth": 64},
    }
    parts.update(overrides)
    return encode_capture(make_header(99), **parts)  # type: ignore[arg-type]


def test_sample_v1_file_parses() -> None:
    capture = read_capture(SAMPLE)
    h = capture.header
    assert (h.version, h.pid, h.final, h.child, h.pointer_size) == (1, 4242, True, False, 8)
    assert capture.process is not None
    assert capture.process.command_line == ["/opt/sample/bin/leaky", "--leak", "3"]
    assert [m.path for m in capture.modules] == ["/opt/sample/bin/leaky",
                                                 "/opt/sample/lib/libplugin.so"]
    assert [m.unloaded for m in capture.modules] == [False, True]
    assert capture.modules[0].build_id == bytes.fromhex("aabbccdd")
    assert sorted(capture.stacks) == [1, 2, 3]
    assert capture.stacks[1].live_blocks == 3 and capture.stacks[1].live_bytes == 9216
    assert capture.stacks[1].free_count == 10
    assert len(capture.blocks) == 6
    assert int(capture.blocks["size"].sum()) == 74876
    assert capture.counters["truncated_stacks"] == 1
    # Version 1 has no scan: every block is unscanned.
    assert capture.scan is None and not capture.scanned
    assert not capture.blocks["leak_kind"].any() and len(capture.leak_groups) == 0


def test_sample_v2_file_parses() -> None:
    capture = read_capture(SAMPLE_V2)
    assert (capture.header.version, capture.header.pid) == (2, 4343)
    assert capture.scanned
    assert capture.scan == ScanStats(1_234_567, 1_048_576, 65_536, 1, 0, 0b11110)
    assert capture.scan.heuristics == ["stdstring", "length64", "newarray",
                                       "multipleinheritance"]
    rows = list(capture.block_rows())
    assert len(rows) == 10
    kinds = [fmt.leak_kind_name(r.leak_kind) for r in rows]
    assert kinds.count("definitely lost") == 3 and kinds.count("indirectly lost") == 2
    assert kinds.count("possibly lost") == 1 and kinds.count("still reachable") == 2
    # The scan leaves memory mappings alone.
    assert {fmt.kind_name(r.kind) for r in rows if r.leak_kind == fmt.LEAK_UNSCANNED} == {
        "mmap", "brk"}
    assert [fmt.heuristic_name(r.heuristic) for r in rows if r.heuristic] == ["stdstring"]
    assert list(capture.leak_group_rows()) == [LeakGroupRow(0x5555555A0010, 32, 2)]


def test_sample_files_are_what_make_sample_writes() -> None:
    import sys

    sys.path.insert(0, str(DATA))
    from make_sample import sample_bytes, sample_v2_bytes

    assert SAMPLE.read_bytes() == sample_bytes()
    assert SAMPLE_V2.read_bytes() == sample_v2_bytes()


def test_v2_round_trip_keeps_leak_kinds_groups_and_scan() -> None:
    blocks = [BlockRow(0x1000, 64, 7, 1, 10, fmt.LEAK_DEFINITELY_LOST),
              BlockRow(0x2000, 32, 7, 1, 20, fmt.LEAK_INDIRECTLY_LOST),
              BlockRow(0x3000, 40, 7, 1, 30, fmt.LEAK_STILL_REACHABLE, 3)]
    scan = ScanStats(5, 6, 7, 8, 9, 1 << 3)
    capture = parse_capture(small_capture(blocks=blocks, scan=scan,
                                          leak_groups=[LeakGroupRow(0x1000, 32, 1)]))
    assert list(capture.block_rows()) == blocks
    assert capture.scan == scan and capture.scan.heuristics == ["newarray"]
    assert list(capture.leak_group_rows()) == [LeakGroupRow(0x1000, 32, 1)]


def test_v1_reserved_bytes_are_not_leak_kinds() -> None:
    """A version 1 writer may have left anything in the bytes version 2 calls leak_kind."""
    blocks = [BlockRow(0x1000, 64, 7, 1, 10, fmt.LEAK_DEFINITELY_LOST, 2)]
    capture = parse_capture(encode_capture(make_header(version=1), blocks=blocks))
    [row] = capture.block_rows()
    assert (row.leak_kind, row.heuristic) == (fmt.LEAK_UNSCANNED, fmt.HEURISTIC_NONE)


def test_undefined_leak_kind_is_corrupt() -> None:
    blocks = [BlockRow(0x1000, 64, 7, 1, 10, 9)]
    assert "leak_kind 9" in _error(encode_capture(make_header(), blocks=blocks))


def test_short_scan_section_is_corrupt() -> None:
    data = (encode_header(make_header()) + struct.pack("<IIQ", fmt.SECTION_SCAN, 0, 8)
            + b"\0" * 8 + encode_end())
    assert "SCAN section is corrupt" in _error(data)


def test_leak_group_count_that_does_not_match_the_section_is_corrupt() -> None:
    payload = struct.pack("<Q", 2) + struct.pack("<QQQ", 1, 2, 3)
    data = (encode_header(make_header()) + struct.pack("<IIQ", fmt.SECTION_LEAK_GROUPS, 0,
            len(payload)) + payload + encode_end())
    assert "LEAK_GROUPS section is corrupt" in _error(data)


def test_round_trip_keeps_every_field() -> None:
    capture = parse_capture(small_capture())
    assert capture.process is not None
    assert capture.process.command_line == ["prog", "a b", ""]  # empty arguments survive
    assert capture.process.cwd == "/tmp"
    [module] = capture.modules
    assert (module.load_bias, module.start, module.end, module.build_id) == (
        0x400000, 0x401000, 0x402000, b"\x01\x02")
    stack = capture.stacks[7]
    assert stack.return_addresses == (0x401234, 0x401500)
    assert (stack.live_blocks, stack.live_bytes, stack.alloc_count) == (2, 96, 2)
    rows = list(capture.block_rows())
    assert rows == [BlockRow(0x1000, 64, 7, 1, 10), BlockRow(0x2000, 32, 7, 2, 20)]
    assert capture.counters == {"dropped_blocks": 0, "max_depth": 64}


def test_unknown_sections_are_skipped() -> None:
    capture = parse_capture(encode_capture(make_header(), extra_sections=[(77, b"future!")]))
    assert capture.unknown_sections == [77]


def test_empty_capture_has_no_blocks() -> None:
    capture = parse_capture(encode_capture(make_header()))
    assert len(capture.blocks) == 0 and capture.stacks == {} and capture.process is None


def _error(data: bytes) -> str:
    with pytest.raises(CaptureError) as info:
        parse_capture(data, "x.lt")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"cannot read .*nope\.lt: No such file"):
        read_capture(tmp_path / "nope.lt")


def test_directory_is_not_a_capture(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot read"):
        read_capture(tmp_path)


@pytest.mark.parametrize("data", [b"", b"LEAK", b"\x7fELF" + b"\0" * 100, b"hello world" * 9])
def test_not_a_capture(data: bytes) -> None:
    assert "not a leaktrace capture" in _error(data)


def test_newer_version_is_refused_with_upgrade_hint() -> None:
    data = small_capture()
    newer = data[:8] + struct.pack("<I", 3) + data[12:]
    assert _error(newer) == ("capture format version 3 is newer than this leaktrace "
                             "(reads up to 2); upgrade leaktrace")


def test_missing_end_section_is_truncated() -> None:
    data = small_capture()
    assert data.endswith(encode_end())
    assert "truncated" in _error(data[: -len(encode_end())])


@pytest.mark.parametrize("cut", [30, 64, 70, 200, -20])
def test_cut_anywhere_is_truncated(cut: int) -> None:
    message = _error(small_capture()[:cut])
    assert "truncated" in message


def test_block_count_that_does_not_match_the_section_is_corrupt() -> None:
    blocks = encode_blocks([BlockRow(1, 2, 0, 1, 0)])
    lying = blocks[:16] + struct.pack("<Q", 5) + blocks[24:]  # claims 5 records, holds 1
    data = encode_header(make_header()) + lying + encode_end()
    assert "corrupt" in _error(data)


def test_module_count_out_of_range_is_corrupt() -> None:
    payload = struct.pack("<II", 1_000_000, 0)
    data = (encode_header(make_header()) + struct.pack("<IIQ", fmt.SECTION_MODULES, 0,
            len(payload)) + payload + encode_end())
    message = _error(data)
    assert "corrupt" in message and "module count" in message


def test_string_length_out_of_range_is_corrupt() -> None:
    payload = struct.pack("<II", 1, 0) + struct.pack("<I", 0xFFFFFFF0)
    data = (encode_header(make_header()) + struct.pack("<IIQ", fmt.SECTION_PROCESS, 0,
            len(payload)) + payload + encode_end())
    assert "corrupt" in _error(data)


def test_header_size_out_of_range_is_corrupt() -> None:
    data = bytearray(small_capture())
    data[12:16] = struct.pack("<I", 10**6)
    assert "header size" in _error(bytes(data))


def test_dump_shows_leak_kinds_groups_and_scan() -> None:
    from leaktrace.commands.dump import dump_lines

    lines = list(dump_lines(read_capture(SAMPLE_V2)))
    assert "  0x5555555a0010 size=16 stack=1 kind=malloc leak_kind=definitely_lost " \
           "alloc_time_ns=100000000" in lines
    assert any("kind=calloc leak_kind=still_reachable heuristic=stdstring" in line
               for line in lines)
    assert "LEAK_GROUPS count=1" in lines
    assert "  0x5555555a0010 indirect_bytes=32 indirect_blocks=2" in lines
    assert ("SCAN duration_ns=1234567 bytes_scanned=1048576 root_bytes=65536 "
            "threads_stopped=1 threads_not_stopped=0 "
            "heuristics=stdstring,length64,newarray,multipleinheritance") in lines


@pytest.mark.parametrize("extra", range(8))
def test_blocks_and_stacks_are_read_aligned(tmp_path: Path, extra: int) -> None:
    """Whatever the length of the PROCESS and MODULES strings before them, the BLOCKS and
    STACKS arrays start at a multiple of 8 bytes in memory (numpy is many times slower on
    unaligned numbers), and hold what the file says."""
    path = tmp_path / f"aligned-{extra}.lt"
    path.write_bytes(small_capture(
        process=ProcessInfo(1, "/bin/prog" + "x" * extra, ["prog"], "/tmp")))
    capture = read_capture(path)
    table = capture.stacks
    assert isinstance(table, StackTable)
    assert capture.blocks.flags.aligned and table.addresses.flags.aligned
    assert capture.blocks["alloc_time_ns"].flags.aligned
    assert capture.blocks["size"].tolist() == [64, 32]
    assert table.return_addresses(0) == (0x401234, 0x401500)


def test_reading_a_capture_turns_numpy_huge_pages_off() -> None:
    # numpy's huge page requests cost this project's VMs several times the system time of
    # a big report (leaktrace/numpy_pages.py); reading a capture turns them off.
    import numpy as np

    switch = np._core.multiarray._set_madvise_hugepage
    switch(True)
    read_capture(SAMPLE)
    assert switch(False) is False  # the previous setting


def test_captures_read_into_mapped_memory_read_the_same(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    # Big captures are read into memory mapped with MAP_POPULATE (reader._room), small ones
    # into a bytearray: the same capture either way.
    import mmap

    from leaktrace.capture import reader

    small = read_capture(SAMPLE_V2)
    monkeypatch.setattr(reader, "_MAPPED_FROM", 0)
    room = reader._room(4096)
    assert isinstance(room, mmap.mmap) and len(room) == 4096 and room[:] == bytes(4096)
    mapped = read_capture(SAMPLE_V2)
    assert mapped.blocks.tobytes() == small.blocks.tobytes()
    assert list(mapped.stacks.items()) == list(small.stacks.items())
    assert mapped.header == small.header and mapped.modules == small.modules
