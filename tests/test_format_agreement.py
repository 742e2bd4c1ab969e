"""src/leaktrace/capture/format.py must agree with shim/capture_format.h, the definition:
every LT_X of the header (a #define, or an enum constant made from an X-macro list) is X in
Python with the same value, every constant of format.py is in the header, and the shim
writes sections of exactly the sizes the header gives."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from leakharness import compile_program, run_traced

from leaktrace.capture import format as fmt

HEADER = (Path(__file__).parent.parent / "shim" / "capture_format.h").read_text()


def _macro_body(name: str) -> str:
    """The X-macro list `#define name(X) ...` up to its last continued line."""
    match = re.search(rf"#define {name}\(X\)((?:.*\\\n)*.*)", HEADER)
    assert match, name
    return match.group(1)


def _scalars() -> dict[str, int | bytes]:
    """Every `#define LT_NAME value` that is not an X-macro list, without the LT_ prefix."""
    found: dict[str, int | bytes] = {}
    for name, value in re.findall(r"^#define LT_(\w+)[ \t]+(\S+)", HEADER, re.MULTILINE):
        if value.startswith('"'):
            found[name] = value.strip('"').encode() + b"\0"
        else:
            found[name] = int(value.rstrip("u"), 0)
    return found


def _enum_constants() -> dict[str, int]:
    """Every enum constant the X-macro lists make (`LT_LEAK_##name = num`), without LT_."""
    found: dict[str, int] = {}
    enums = re.findall(r"#define LT_X\(([^)]*)\) LT_(\w+?)##name = num,\s*\n\s*(\w+)\(LT_X\)",
                       HEADER)
    assert len(enums) == 5, enums
    for parameters, prefix, listing in enums:
        arity = len(parameters.split(","))
        body = _macro_body(listing)
        entries = re.findall(r"X\((\d+), (\w+)" + (r", \"[^\"]*\"\)" if arity == 3 else r"\)"),
                             body)
        assert len(entries) == body.count("X("), listing  # every entry was read
        for number, name in entries:
            found[prefix + name] = int(number)
    return found


def test_every_header_constant_is_in_python_with_its_value() -> None:
    expected = {**_scalars(), **_enum_constants()}
    assert len(expected) > 50
    for name, value in expected.items():
        assert getattr(fmt, name, None) == value, f"format.{name} should be {value!r}"


def test_every_python_constant_is_in_the_header() -> None:
    expected = {**_scalars(), **_enum_constants()}
    python = {name for name, value in vars(fmt).items()
              if name.isupper() and isinstance(value, (int, bytes))}
    assert python - set(expected) == set()


def _named_texts(name: str) -> dict[int, str]:
    """{number: text} of an X-macro list whose entries are X(number, NAME, "text")."""
    body = _macro_body(name)
    return {int(n): text for n, text in re.findall(r'X\((\d+), \w+, "([^"]+)"\)', body)}


def test_texts_agree() -> None:
    assert _named_texts("LT_BLOCK_KINDS") == fmt.BLOCK_KINDS
    assert _named_texts("LT_LEAK_KINDS") == fmt.LEAK_KINDS
    assert _named_texts("LT_HEURISTICS") == fmt.HEURISTICS
    assert _named_texts("LT_CAPTURE_REASONS") == fmt.REASON_LABELS
    tags = dict(re.findall(r"X\((\d+), (\w+)\)", _macro_body("LT_SECTION_TAGS")))
    assert {int(n): name for n, name in tags.items()} == fmt.SECTION_NAMES


def test_mapping_kinds_are_the_header_mappings() -> None:
    names = {v: k for k, v in _enum_constants().items() if k.startswith("KIND_")}
    assert {names[k] for k in fmt.MAPPING_KINDS} == {"KIND_MMAP", "KIND_MREMAP", "KIND_BRK"}


def _sections(data: bytes) -> dict[int, bytes]:
    sections, at = {}, fmt.HEADER_SIZE
    while at < len(data):
        tag, _reserved, length = struct.unpack_from("<IIQ", data, at)
        start = at + fmt.SECTION_HEADER_SIZE
        sections[tag] = data[start:start + length]
        at = start + length
    return sections


def test_the_shim_writes_the_header_sizes(tmp_path: Path) -> None:
    """A real capture, section by section, against the sizes of capture_format.h."""
    exe = compile_program("leak_structures.c", tmp_path, "-O0")
    run = run_traced(exe, work=tmp_path, options=("--interval", "0.01"))
    data = run.capture.read_bytes()
    assert data[:8] == fmt.MAGIC
    assert struct.unpack_from("<II", data, 8) == (fmt.VERSION, fmt.HEADER_SIZE)
    sections = _sections(data)
    assert list(sections)[-1] == fmt.SECTION_END and sections[fmt.SECTION_END] == b""
    blocks = sections[fmt.SECTION_BLOCKS]
    (count,) = struct.unpack_from("<Q", blocks)
    assert count > 0 and len(blocks) == 8 + count * fmt.BLOCK_RECORD_SIZE
    groups = sections[fmt.SECTION_LEAK_GROUPS]
    (count,) = struct.unpack_from("<Q", groups)
    assert count > 0 and len(groups) == 8 + count * fmt.LEAK_GROUP_RECORD_SIZE
    assert len(sections[fmt.SECTION_SCAN]) == fmt.SCAN_PAYLOAD_SIZE
    assert len(sections[fmt.SECTION_SESSION]) == fmt.SESSION_PAYLOAD_SIZE
    stacks = sections[fmt.SECTION_STACKS]
    (count,) = struct.unpack_from("<I", stacks)
    at = 8
    for _ in range(count):
        _stack_id, depth = struct.unpack_from("<II", stacks, at)
        at += fmt.STACK_ENTRY_SIZE + 8 * depth
    assert at == len(stacks)
    # A series: snapshots every 10 ms of a program that runs for 400 ms.
    slow = run_traced(compile_program("slow_growth.c", tmp_path, "-O0"), work=tmp_path,
                      options=("--interval", "0.01"))
    series = _sections(slow.capture.read_bytes())[fmt.SECTION_SERIES]
    (count,) = struct.unpack_from("<I", series)
    at = 8
    for _ in range(count):
        _time, entries, _reserved = struct.unpack_from("<QII", series, at)
        at += fmt.SNAPSHOT_HEADER_SIZE + entries * fmt.SERIES_ENTRY_SIZE
    assert count > 0 and at == len(series)
    # FATAL: a program killed by SIGSEGV.
    crash = run_traced(compile_program("crash.c", tmp_path, "-O0"), "segv", work=tmp_path)
    fatal = _sections(crash.capture.read_bytes())[fmt.SECTION_FATAL]
    (depth,) = struct.unpack_from("<I", fatal, 28)
    assert depth > 0 and len(fatal) == fmt.FATAL_PAYLOAD_SIZE + 8 * depth
