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
