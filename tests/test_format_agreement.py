"""src/leaktrace/capture/format.py must agree with shim/capture_format.h, the definition."""

from __future__ import annotations

import re
from pathlib import Path

from leaktrace.capture import format as fmt

HEADER = (Path(__file__).parent.parent / "shim" / "capture_format.h").read_text()


def _define(name: str) -> str:
    match = re.search(rf"#define {name}\s+(\S+)", HEADER)
    assert match, name
    return match.group(1)


def test_scalars_agree() -> None:
    assert _define("LT_CAPTURE_MAGIC").strip('"').encode() + b"\0" == fmt.MAGIC
    assert int(_define("LT_CAPTURE_VERSION")) == fmt.VERSION
    assert int(_define("LT_CAPTURE_HEADER_SIZE")) == fmt.HEADER_SIZE
    assert int(_define("LT_BLOCK_RECORD_SIZE")) == fmt.BLOCK_RECORD_SIZE
    assert int(_define("LT_FLAG_FINAL").rstrip("u")) == fmt.FLAG_FINAL
    assert int(_define("LT_FLAG_CHILD").rstrip("u")) == fmt.FLAG_CHILD
    assert int(_define("LT_BLOCK_FLAG_SINCE_BASELINE").rstrip("u")) == (
        fmt.BLOCK_FLAG_SINCE_BASELINE)


def _macro_body(name: str) -> str:
    """The X-macro list `#define name(X) ...` up to its last continued line."""
    match = re.search(rf"#define {name}\(X\)((?:.*\\\n)*.*)", HEADER)
    assert match, name
    return match.group(1)


def test_section_tags_agree() -> None:
    body = _macro_body("LT_SECTION_TAGS")
    tags = {int(n): name for n, name in re.findall(r"X\((\d+), (\w+)\)", body)}
    assert tags == fmt.SECTION_NAMES


def test_block_kinds_agree() -> None:
    body = _macro_body("LT_BLOCK_KINDS")
    kinds = {int(n): text for n, text in re.findall(r'X\((\d+), \w+, "(\w+)"\)', body)}
    assert kinds == fmt.BLOCK_KINDS
    assert len(kinds) == body.count("X(")  # every entry was read


def _named_texts(name: str) -> dict[int, str]:
    """{number: text} of an X-macro list whose entries are X(number, NAME, "text")."""
    body = _macro_body(name)
    return {int(n): text for n, text in re.findall(r'X\((\d+), \w+, "([^"]+)"\)', body)}


def test_leak_kinds_agree() -> None:
    kinds = _named_texts("LT_LEAK_KINDS")
    assert kinds == fmt.LEAK_KINDS
    assert kinds[fmt.LEAK_UNSCANNED] == "unscanned"
    assert kinds[fmt.LEAK_DEFINITELY_LOST] == "definitely lost"
    assert kinds[fmt.LEAK_INDIRECTLY_LOST] == "indirectly lost"
    assert kinds[fmt.LEAK_POSSIBLY_LOST] == "possibly lost"
    assert kinds[fmt.LEAK_STILL_REACHABLE] == "still reachable"


def test_heuristics_agree() -> None:
    heuristics = _named_texts("LT_HEURISTICS")
    assert heuristics == fmt.HEURISTICS
    assert heuristics[fmt.HEURISTIC_NONE] == "none"


def test_mapping_kinds_are_the_header_mappings() -> None:
    body = _macro_body("LT_BLOCK_KINDS")
    names = {int(n): name for n, name in re.findall(r"X\((\d+), (\w+),", body)}
    assert {names[k] for k in fmt.MAPPING_KINDS} == {"MMAP", "MREMAP", "BRK"}
