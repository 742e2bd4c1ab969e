"""Read valgrind memcheck's XML output (--xml=yes, protocol version 4) into a Report.

Each leak error (<kind>Leak_...</kind>) is one loss record: bytes, blocks, the leak kind and
the allocation's stack. valgrind 3.19 writes no leak summary into the XML, so the totals per
leak kind are added up here from the loss records, as valgrind's text summary does: direct
bytes per kind (a definitely lost block's "indirect" bytes are indirectly lost records too).
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from leaktrace.errors import LeaktraceError
from leaktrace.input_files import open_regular
from leaktrace.model import Frame, KindTotal, LeakRecord, Report, Summary

LEAK_KINDS = {
    "Leak_DefinitelyLost": "definitely lost",
    "Leak_IndirectlyLost": "indirectly lost",
    "Leak_PossiblyLost": "possibly lost",
    "Leak_StillReachable": "still reachable",
}
# Leaks a user must fix; "still reachable" blocks are pointed to at exit and are not counted.
REAL_LEAK_KINDS = ("definitely lost", "indirectly lost", "possibly lost")

# "64 (32 direct, 32 indirect) bytes in 1 blocks are definitely lost in loss record 2 of 5"
_SPLIT_BYTES = re.compile(r"\(([\d,]+) direct, ([\d,]+) indirect\)")
_LOSS_RECORD = re.compile(r"loss record ([\d,]+) of ([\d,]+)")
# valgrind's own replacement allocators: the frames above the program's code
_PRELOAD_OBJECT = re.compile(r"vgpreload_[a-z]+-[^/]*\.so$")


class ValgrindXmlError(LeaktraceError):
    """Not valgrind XML, not memcheck, or truncated."""


@dataclass
class _Process:
    pid: int | None = None
    executable: str | None = None
    arguments: list[str] | None = None
    tool: str | None = None
    finished: bool = False


def is_valgrind_xml(head: bytes) -> bool:
    """Whether the first bytes of a file look like valgrind XML."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<?xml") and b"<valgrindoutput" in head


def load(path: str) -> Report:
    """Parse the XML file valgrind wrote with --xml-file. Raises ValgrindXmlError."""
    try:
        return _parse(path)
    except ET.ParseError as error:
        line, column = error.position
        reason = str(error).split(":", 1)[0]
        if reason.startswith("no element found") or reason.startswith("unclosed token"):
            raise ValgrindXmlError(
                f"{path}: valgrind XML ends early at line {line} (was valgrind killed?)"
            ) from None
        raise ValgrindXmlError(f"{path}:{line}:{column}: not valid XML ({reason})") from None
    except IsADirectoryError:
        raise ValgrindXmlError(f"{path}: is a directory, not a valgrind XML file") from None
    except OSError as error:
        raise ValgrindXmlError(f"cannot read {path}: {error.strerror}") from None


def _parse(path: str) -> Report:
    with open_regular(path, "valgrind XML file", ValgrindXmlError) as source:
        return _parse_events(path, ET.iterparse(source, events=("start", "end")))


def _parse_events(path: str, events: Iterator[tuple[str, ET.Element]]) -> Report:
    process = _Process()
    records: list[LeakRecord] = []
    other_errors: Counter[str] = Counter()
    suppressed = 0
    seen_root = False
    for event, element in events:
        if event == "start":
            if not seen_root:
                if element.tag != "valgrindoutput":
                    raise ValgrindXmlError(f"{path}: XML, but not valgrind output")
                seen_root = True
            continue
        tag = element.tag
        if tag == "protocoltool":
            process.tool = (element.text or "").strip()
            if process.tool != "memcheck":
                raise ValgrindXmlError(
                    f"{path}: written by valgrind's {process.tool or 'unknown'} tool; "
                    "leak records come from memcheck"
                )
        elif tag == "pid":
            process.pid = _int(element.text)
        elif tag == "argv":
            process.executable = (element.findtext("exe") or "").strip() or None
            process.arguments = [(arg.text or "") for arg in element.findall("arg")]
        elif tag == "state" and (element.text or "").strip() == "FINISHED":
            process.finished = True
        elif tag == "error":
            kind = (element.findtext("kind") or "").strip()
            if kind in LEAK_KINDS:
                records.append(_leak_record(element, LEAK_KINDS[kind]))
            else:
                other_errors[kind or "unknown"] += 1
            element.clear()  # keep memory flat on huge files
        elif tag == "pair" and element.find("name") is not None:
            suppressed += _int(element.findtext("count")) or 0
    if not seen_root:
        raise ValgrindXmlError(f"{path}: empty file, not valgrind XML")
    return _report(path, process, records, other_errors, suppressed)


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").replace(",", "").strip(), 0)
    except ValueError:
        return None


def _leak_record(error: ET.Element, leak_kind: str) -> LeakRecord:
    total_bytes = _int(error.findtext("xwhat/leakedbytes")) or 0
    blocks = _int(error.findtext("xwhat/leakedblocks")) or 0
    text = error.findtext("xwhat/text") or ""
    split = _SPLIT_BYTES.search(text)
    direct, indirect = (total_bytes, 0)
    if split:
        direct, indirect = (
            int(split.group(1).replace(",", "")),
            int(split.group(2).replace(",", "")),
        )
    loss_record = _LOSS_RECORD.search(text)

    frames = [_frame(frame) for frame in error.iterfind("stack/frame")]
    # The first frames are valgrind's malloc/new replacements: they name the API.
    api = "unknown"
    while frames and frames[0].module and _PRELOAD_OBJECT.search(frames[0].module):
        api = frames.pop(0).function or api
    record = LeakRecord(
        stack_id=_stack_id(api, leak_kind, frames),
        kind=api,
        bytes=direct,
        blocks=blocks,
        frames=frames,
        leak_kind=leak_kind,
        direct_bytes=direct,
        indirect_bytes=indirect,
    )
    if loss_record:
        record.loss_record = int(loss_record.group(1).replace(",", ""))
    return record


def _stack_id(api: str, leak_kind: str, frames: list[Frame]) -> str:
    """Stable across runs: valgrind gives runtime addresses only, so use names and lines."""
    text = "|".join(
        f"{os.path.basename(f.module or '')}:{f.function}:{os.path.basename(f.file or '')}:{f.line}"
        for f in frames
    )
    return hashlib.blake2b(f"{api}|{leak_kind}|{text}".encode(), digest_size=4).hexdigest()


def _frame(element: ET.Element) -> Frame:
    directory = element.findtext("dir")
    file = element.findtext("file")
    if file and directory and not os.path.isabs(file):
        file = os.path.join(directory, file)
    return Frame(
        address=_int(element.findtext("ip")) or 0,
        function=element.findtext("fn"),
        file=file,
        line=_int(element.findtext("line")),
        module=element.findtext("obj"),
    )


def _report(
    path: str,
    process: _Process,
    records: list[LeakRecord],
    other_errors: Counter[str],
    suppressed: int,
) -> Report:
    summary = Summary()
    counters: dict[str, int] = {}
    for record in records:
        summary.live_blocks += record.blocks
        summary.live_bytes += record.bytes
        by_kind = summary.by_kind.setdefault(record.kind, KindTotal())
        by_kind.blocks += record.blocks
        by_kind.bytes += record.bytes
        prefix = (record.leak_kind or "").replace(" ", "_")
        counters[f"{prefix}_bytes"] = counters.get(f"{prefix}_bytes", 0) + record.bytes
        counters[f"{prefix}_blocks"] = counters.get(f"{prefix}_blocks", 0) + record.blocks
        counters["loss_records"] = counters.get("loss_records", 0) + 1
    counters["other_errors"] = sum(other_errors.values())
    counters["suppressed_errors"] = suppressed

    notes = [
        f"{leak_kind}: {counters.get(key + '_bytes', 0):,} bytes in "
        f"{counters.get(key + '_blocks', 0):,} blocks"
        for leak_kind in (*REAL_LEAK_KINDS, "still reachable")
        for key in [leak_kind.replace(" ", "_")]
    ]
    if other_errors:
        listed = ", ".join(f"{kind} x{count}" for kind, count in other_errors.most_common())
        notes.append(f"valgrind also reported {sum(other_errors.values())} memory errors: {listed}")
    if not process.finished:
        notes.append("the program did not finish under valgrind: the leak check may be missing")
    records.sort(key=lambda r: (-r.bytes, -r.blocks, r.stack_id))
    return Report(
        source="valgrind",
        program=process.executable,
        command=[process.executable or "", *(process.arguments or [])]
        if process.executable
        else [],
        pid=process.pid,
        records=records,
        summary=summary,
        counters=counters,
        capture_path=path,
        notes=notes,
    )
