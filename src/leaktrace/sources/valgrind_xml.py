"""Read valgrind memcheck's XML output (--xml=yes, protocol version 4) into a Report.

Each leak error (<kind>Leak_...</kind>) is one loss record: bytes, blocks, the leak kind,
valgrind's "loss record N of M" and the allocation's stack. valgrind writes no LEAK SUMMARY
into the XML, so the summary is added up here from the loss records, as valgrind's text
summary is (own bytes per kind). A kind that valgrind's --show-leak-kinds left out of the
XML (by default still reachable and indirectly lost) is unknown, never 0; so are the sizes of
the errors valgrind suppressed (its <suppcounts> only counts them).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from leaktrace.analyze.leak_totals import leak_totals
from leaktrace.analyze.signal_causes import cause_of, signal_name
from leaktrace.errors import LeaktraceError
from leaktrace.input_files import open_regular
from leaktrace.leak_kinds import (
    DEFAULT_SHOWN,
    DEFINITELY_LOST,
    INDIRECTLY_LOST,
    LEAK_KINDS,
    POSSIBLY_LOST,
    STILL_REACHABLE,
    parse_kind_list,
)
from leaktrace.model import FatalSignal, Frame, InvalidFree, KindTotal, LeakRecord, Report, Summary

ERROR_KINDS = {
    "Leak_DefinitelyLost": DEFINITELY_LOST,
    "Leak_IndirectlyLost": INDIRECTLY_LOST,
    "Leak_PossiblyLost": POSSIBLY_LOST,
    "Leak_StillReachable": STILL_REACHABLE,
}
# Leaks a user must fix; "still reachable" blocks are pointed to at exit.
REAL_LEAK_KINDS = (DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST)

# "64 (32 direct, 32 indirect) bytes in 1 blocks are definitely lost in loss record 2 of 5"
_SPLIT_BYTES = re.compile(r"\(([\d,]+) direct, ([\d,]+) indirect\)")
_LOSS_RECORD = re.compile(r"loss record ([\d,]+) of ([\d,]+)")
_ADDRESS = re.compile(r"Address (0x[0-9a-fA-F]+)")
# valgrind's own replacement allocators: the frames above the program's code (and leaktrace's
# shim, which heads its stacks in the XML it writes: render/valgrind_xml.py)
_PRELOAD_OBJECT = re.compile(r"(vgpreload_[a-z]+-[^/]*|libleaktrace_shim)\.so$")


class ValgrindXmlError(LeaktraceError):
    """Not valgrind XML, not memcheck, or truncated."""


@dataclass
class _Process:
    pid: int | None = None
    executable: str | None = None
    arguments: list[str] | None = None
    valgrind_arguments: list[str] = field(default_factory=list)
    running: bool = False  # <status><state>RUNNING: the program started
    finished: bool = False  # <state>FINISHED: it ended and valgrind wrote its checks


def is_valgrind_xml(head: bytes) -> bool:
    """Whether the first bytes of a file look like valgrind XML."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<?xml") and b"<valgrindoutput" in head


def load(path: str) -> Report:
    """Parse the XML file valgrind wrote with --xml-file. Raises ValgrindXmlError."""
    process = _Process()
    try:
        with open_regular(path, "valgrind XML file", ValgrindXmlError) as source:
            return _parse_events(path, ET.iterparse(source, events=("start", "end")), process)
    except ET.ParseError as error:
        line, column = error.position
        reason = str(error).split(":", 1)[0]
        if reason.startswith("no element found") or reason.startswith("unclosed token"):
            raise ValgrindXmlError(_ends_early(path, line, process)) from None
        raise ValgrindXmlError(f"{path}:{line}:{column}: not valid XML ({reason})") from None
    except IsADirectoryError:
        raise ValgrindXmlError(f"{path}: is a directory, not a valgrind XML file") from None
    except OSError as error:
        raise ValgrindXmlError(f"cannot read {path}: {error.strerror}") from None


def _ends_early(path: str, line: int, process: _Process) -> str:
    """Why a file stops before </valgrindoutput>. valgrind stops writing, in the middle of
    the run, when the program replaces itself by exec (a script, a wrapper such as pyenv's
    shims) unless --trace-children=yes follows it; or it was killed."""
    if process.running and not process.finished:
        program = process.executable or "the program"
        return (f"{path}: valgrind's output stops at line {line} while {program} was running: "
                "it exec'd another program, which valgrind follows only with "
                "--trace-children=yes, or valgrind was killed; no leak check was written")
    return f"{path}: valgrind XML ends early at line {line} (was valgrind killed?)"


def _parse_events(path: str, events: Iterator[tuple[str, ET.Element]],
                  process: _Process) -> Report:
    records: list[LeakRecord] = []
    invalid_frees: dict[str, InvalidFree] = {}  # unique id -> valgrind's "Invalid free()"
    fatal: FatalSignal | None = None
    other_errors: dict[str, str] = {}  # unique id -> kind of each other error's context
    occurrences: dict[str, int] = {}  # unique id -> times it happened (<errorcounts>)
    suppressed = 0
    records_total: int | None = None
    leak_checks = 1
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
            tool = (element.text or "").strip()
            if tool != "memcheck":
                raise ValgrindXmlError(
                    f"{path}: written by valgrind's {tool or 'unknown'} tool; "
                    "leak records come from memcheck"
                )
        elif tag == "pid":
            process.pid = _int(element.text)
        elif tag == "vargv":
            process.valgrind_arguments = [(arg.text or "") for arg in element.findall("arg")]
        elif tag == "argv":
            process.executable = (element.findtext("exe") or "").strip() or None
            process.arguments = [(arg.text or "") for arg in element.findall("arg")]
        elif tag == "state":
            state = (element.text or "").strip()
            process.running |= state == "RUNNING"
            process.finished |= state == "FINISHED"
        elif tag == "error":
            kind = (element.findtext("kind") or "").strip()
            if kind in ERROR_KINDS:
                try:
                    record, of = _leak_record(element, ERROR_KINDS[kind])
                except _BadNumber as bad:
                    raise ValgrindXmlError(f"{path}: not valgrind's leak report: {bad}") from None
                if _starts_a_leak_check(record, of, records, records_total):
                    # The program asked for a leak check (VALGRIND_DO_LEAK_CHECK) before the
                    # one at exit: only the last is kept, as valgrind's final LEAK SUMMARY.
                    records.clear()
                    leak_checks += 1
                records.append(record)
                records_total = of or records_total
            else:
                unique = (element.findtext("unique") or "").strip() or f"#{len(other_errors)}"
                other_errors[unique] = kind or "unknown"
                if kind in ("InvalidFree", "MismatchedFree"):
                    invalid_frees[unique] = _invalid_free(element, kind == "MismatchedFree")
            element.clear()  # keep memory flat on huge files
        elif tag == "fatal_signal":
            fatal = _fatal_signal(element, process.pid)
        elif tag == "pair" and element.find("name") is not None:  # <suppcounts>
            suppressed += min(max(_int(element.findtext("count")) or 0, 0), MAX_COUNT)
        elif tag == "pair" and element.find("unique") is not None:  # <errorcounts>
            occurrences[(element.findtext("unique") or "").strip()] = (
                _int(element.findtext("count")) or 1)
    if not seen_root:
        raise ValgrindXmlError(f"{path}: empty file, not valgrind XML")
    errors: Counter[str] = Counter()
    for unique, kind in other_errors.items():
        errors[kind] += occurrences.get(unique, 1)
    report = _report(path, process, records, errors, len(other_errors), suppressed)
    for unique, invalid in invalid_frees.items():
        invalid.calls = occurrences.get(unique, 1)
    report.invalid_frees = sorted(invalid_frees.values(), key=lambda f: (-f.calls, f.stack_id))
    report.fatal = fatal
    if leak_checks > 1:
        report.notes.append(f"valgrind ran {leak_checks} leak checks (the program asked for "
                            "the earlier ones): this report is the last")
    report.loss_records_total = records_total
    return report


def _starts_a_leak_check(record: LeakRecord, of: int | None, records: list[LeakRecord],
                         records_total: int | None) -> bool:
    """Whether a loss record begins another leak check: each check numbers its records from 1
    and writes them in order, so a number that does not grow, or another total, starts one."""
    if not records or record.loss_record is None or records[-1].loss_record is None:
        return False
    return record.loss_record <= records[-1].loss_record or of != records_total


def shown_leak_kinds(valgrind_arguments: list[str]) -> frozenset[str]:
    """The leak kinds valgrind wrote loss records for, from its command line as the XML
    gives it: --show-leak-kinds (default definite,possible), the older --show-reachable and
    --show-possibly-lost, the last one given winning; none with --leak-check=no."""
    shown = DEFAULT_SHOWN
    for argument in valgrind_arguments:
        name, _, value = argument.partition("=")
        if name == "--leak-check" and value == "no":
            return frozenset()
        if name == "--show-leak-kinds":
            try:
                shown = parse_kind_list(value)
            except LeaktraceError:
                continue  # valgrind itself refuses such a value; keep what came before
        elif name == "--show-reachable":
            shown = frozenset(LEAK_KINDS) if value == "yes" else DEFAULT_SHOWN
        elif name == "--show-possibly-lost":
            shown = shown | {POSSIBLY_LOST} if value == "yes" else shown - {POSSIBLY_LOST}
    return shown


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").replace(",", "").strip(), 0)
    except ValueError:
        return None


def _number(text: str) -> int:
    return int(text.replace(",", ""))


# No count or byte total a real process reaches (as the capture reader's limit): past it, or
# below 0, or not a number, a field is not valgrind's.
MAX_COUNT = (1 << 63) - 1


class _BadNumber(Exception):
    """A leak record's count that no valgrind writes (reported with the file's name)."""


def _count(text: str | None, field: str) -> int:
    value = _int(text) if text is not None else 0
    if value is None or not 0 <= value <= MAX_COUNT:
        raise _BadNumber(f"<{field}> holds {(text or '').strip()[:40]!r}, not a count")
    return value


def _leak_record(error: ET.Element, leak_kind: str) -> tuple[LeakRecord, int | None]:
    """The loss record, and M of its "loss record N of M"."""
    total_bytes = _count(error.findtext("xwhat/leakedbytes"), "leakedbytes")
    blocks = _count(error.findtext("xwhat/leakedblocks"), "leakedblocks")
    text = error.findtext("xwhat/text") or ""
    split = _SPLIT_BYTES.search(text)
    direct, indirect = (total_bytes, 0)
    if split:
        direct, indirect = _number(split.group(1)), _number(split.group(2))
        if direct + indirect > MAX_COUNT:
            raise _BadNumber(f"a leak record's text gives {direct + indirect} bytes, not a count")
    api, frames = _program_frames(error)
    # valgrind lists a call inlined into its caller as a frame of its own with the caller's
    # instruction address, named from the debug info. A recursive call returning to the same
    # place also repeats the address, but as the same frame again.
    for inner, outer in itertools.pairwise(frames):
        inner.inlined = (inner.address != 0 and inner.address == outer.address
                         and inner.line is not None
                         and (inner.function, inner.file, inner.line)
                         != (outer.function, outer.file, outer.line))
    record = LeakRecord(
        stack_id=_stack_id(api, leak_kind, frames),
        kind=api,
        bytes=direct + indirect,
        blocks=blocks,
        frames=frames,
        leak_kind=leak_kind,
        direct_bytes=direct,
        indirect_bytes=indirect,
    )
    loss_record = _LOSS_RECORD.search(text)
    if loss_record is None:
        return record, None
    record.loss_record = _number(loss_record.group(1))
    return record, _number(loss_record.group(2))


def _program_frames(error: ET.Element) -> tuple[str, list[Frame]]:
    """The first stack's frames without valgrind's replacement functions at its top (malloc,
    new, free, delete...), and the API the outermost of those names."""
    frames = [_frame(frame) for frame in error.iterfind("stack[1]/frame")]
    api = "unknown"
    while frames and frames[0].module and _PRELOAD_OBJECT.search(frames[0].module):
        api = frames.pop(0).function or api
    return api, frames


def _invalid_free(error: ET.Element, mismatched: bool) -> InvalidFree:
    """valgrind's "Invalid free() / delete / delete[] / realloc()" or "Mismatched free() /
    delete / delete []": where, and the address (its <auxwhat>: "Address 0x4a42320 is 0 bytes
    inside a block of size 24 free'd")."""
    api, frames = _program_frames(error)
    if api.startswith("operator delete"):  # as a capture names them: every variant as one
        api = "operator delete[]" if api.startswith("operator delete[]") else "operator delete"
    address = _ADDRESS.search(error.findtext("auxwhat") or "")
    what = "mismatched free" if mismatched else "invalid free"
    return InvalidFree(api=api, calls=1, first_address=int(address[1], 16) if address else 0,
                       stack_id=_stack_id(api, what, frames), frames=frames,
                       mismatched=mismatched)


def _fatal_signal(element: ET.Element, pid: int | None) -> FatalSignal:
    """valgrind's <fatal_signal>: "Process terminating with default action of signal 11"."""
    number = _int(element.findtext("signo")) or 0
    code = _int(element.findtext("sicode")) or 0
    address = _int(element.findtext("siaddr"))
    tid = _int(element.findtext("tid")) or 0
    frames = [_frame(frame) for frame in element.iterfind("stack/frame")]
    return FatalSignal(
        signal=number, name=(element.findtext("signame") or "").strip() or signal_name(number),
        code=code, cause=cause_of(number, code, address or 0, 0, -1),
        address=address, sender_pid=None, thread_id=tid, thread_name="",
        main_thread=tid == 1, frames=frames)


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
    contexts: int,
    suppressed: int,
) -> Report:
    by_kind: dict[str, KindTotal] = {}
    for record in records:
        total = by_kind.setdefault(record.kind, KindTotal())
        total.blocks += record.blocks
        total.bytes += record.own_bytes
    shown = shown_leak_kinds(process.valgrind_arguments)
    written = {record.leak_kind for record in records}
    # valgrind's XML does not say which blocks a heuristic (stdstring, ...) made reachable.
    leaks, _ = leak_totals(records, unknown_kinds=frozenset(LEAK_KINDS) - shown - written,
                           heuristics_unknown=True)
    summary = Summary(
        live_blocks=sum(t.blocks for t in by_kind.values()),
        live_bytes=sum(t.bytes for t in by_kind.values()),
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: (-kv[1].bytes, kv[0]))),
        leaks=leaks,
        source_suppressed_errors=suppressed,
    )
    notes = []
    if other_errors:
        # valgrind's counts (<errorcounts>): an error context is written once however often
        # it happened.
        listed = ", ".join(f"{kind} x{count:,}" for kind, count in other_errors.most_common())
        count = sum(other_errors.values())
        notes.append(f"valgrind also reported {count:,} memory error{'s' * (count != 1)} "
                     f"from {contexts:,} context{'s' * (contexts != 1)}: {listed}")
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
        capture_path=os.path.abspath(path),
        notes=notes,
    )
