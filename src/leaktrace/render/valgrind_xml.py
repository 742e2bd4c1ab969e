"""`--format valgrind-xml`: the report as valgrind memcheck writes it with --xml=yes (protocol
version 4), for the tools that read valgrind's XML: CI plugins (ValgrindCI, Jenkins' valgrind
plugin), IDEs (Qt Creator's and Eclipse's memcheck views), and `leaktrace report` itself.

Each loss record shown is one `Leak_*` error with valgrind's sentence, bytes, blocks and
stack; each invalid free an `InvalidFree` error (counted in <errorcounts>); the signal that
ended the program a <fatal_signal>; each suppression used a <suppcounts> pair. A stack starts
with the API frame, as valgrind's replacement function heads it; its object is leaktrace's
shim, which took valgrind's place. The records are those of the other exports (the leak
kinds --show lists, --min-bytes, --top), their stacks down to main as valgrind's, and <vargv>
says which kinds were written
(--show-leak-kinds), so that a reader knows which kinds it has in full. Written in pieces:
a report of a million records is never held whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from xml.sax.saxutils import escape

from leaktrace.errors import LeaktraceError
from leaktrace.leak_kinds import (
    DEFINITELY_LOST,
    INDIRECTLY_LOST,
    LEAK_KINDS,
    POSSIBLY_LOST,
    STILL_REACHABLE,
    kind_list_text,
)
from leaktrace.model import FatalSignal, Frame, InvalidFree, Report
from leaktrace.render.options import RenderOptions, shown_records
from leaktrace.render.text import loss_record_sentence

ERROR_KIND_OF = {DEFINITELY_LOST: "Leak_DefinitelyLost", INDIRECTLY_LOST: "Leak_IndirectlyLost",
                 POSSIBLY_LOST: "Leak_PossiblyLost", STILL_REACHABLE: "Leak_StillReachable"}
# The object named for the API frame when the report does not list the shim among its modules.
SHIM_OBJECT = "libleaktrace_shim.so"
_RECORDS_A_CHUNK = 1000


class NoLeakKinds(LeaktraceError):
    """valgrind XML has a kind for every loss record; a report without a scan has none."""


def valgrind_xml_chunks(report: Report, options: RenderOptions) -> Iterator[str]:
    """The XML in pieces; a report without leak kinds is refused here, before any is made
    (so before an output file is opened)."""
    if report.records and not report.scanned:
        raise NoLeakKinds("--format valgrind-xml needs leak kinds, and this report has no "
                          "reachability scan (valgrind XML has no kind for a live block not "
                          "classified): run `leaktrace scan PID`, or capture with the scan on")
    return _chunks(report, options)


def _chunks(report: Report, options: RenderOptions) -> Iterator[str]:
    shim = next((m.path for m in report.modules if m.path.endswith("/" + SHIM_OBJECT)),
                SHIM_OBJECT)
    yield _preamble(report, options)
    # In valgrind's order, loss record 1 (the smallest) first: a reader takes a number that
    # does not grow for the start of another leak check. Unnumbered records (none after a
    # scan, as a rule) are numbered the same way.
    records = shown_records(report, options)[::-1]
    records.sort(key=lambda r: r.loss_record or 0)
    total = report.loss_records_total or max(
        (r.loss_record for r in report.records if r.loss_record is not None), default=0)
    total = max(total, len(records))
    unique = 0
    for invalid in report.invalid_frees or ():
        yield _invalid_free(invalid, unique, shim)
        unique += 1
    if report.fatal is not None:
        yield _fatal_signal(report.fatal, shim)
    yield '<status>\n  <state>FINISHED</state>\n  <time>00:00:00:00.000 </time>\n</status>\n\n'
    chunk: list[str] = []
    for number, record in enumerate(records, start=1):
        if record.leak_kind not in ERROR_KIND_OF:
            continue
        record_number = record.loss_record or number
        text = loss_record_sentence(record, total) if record.loss_record else \
            f"{loss_record_sentence(record, total)} in loss record {record_number:,} of {total:,}"
        chunk.append(
            f"<error>\n  <unique>{unique:#x}</unique>\n  <tid>1</tid>\n"
            f"  <kind>{ERROR_KIND_OF[record.leak_kind]}</kind>\n"
            f"  <xwhat>\n    <text>{escape(text)}</text>\n"
            f"    <leakedbytes>{record.bytes}</leakedbytes>\n"
            f"    <leakedblocks>{record.blocks}</leakedblocks>\n  </xwhat>\n"
            f"{_stack(_api_frame(record.kind, shim), record.frames)}</error>\n\n")
        unique += 1
        if len(chunk) == _RECORDS_A_CHUNK:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk)
    yield _counts(report)


def render_valgrind_xml(report: Report, options: RenderOptions) -> str:
    return "".join(valgrind_xml_chunks(report, options))


def _preamble(report: Report, options: RenderOptions) -> str:
    command = report.command or ([report.program] if report.program else [])
    shown = frozenset(LEAK_KINDS) if options.leak_kinds is None else options.leak_kinds
    lines = ["Memcheck, a memory error detector", "leaktrace's report in valgrind's XML "
             f"(source: {report.source})"]
    if command:
        lines.append("Command: " + " ".join(command))
    argv = (f"    <exe>{escape(command[0])}</exe>\n"
            + "".join(f"    <arg>{escape(a)}</arg>\n" for a in command[1:])) if command else ""
    return ('<?xml version="1.0"?>\n\n<valgrindoutput>\n\n<protocolversion>4</protocolversion>\n'
            "<protocoltool>memcheck</protocoltool>\n\n<preamble>\n"
            + "".join(f"  <line>{escape(line)}</line>\n" for line in lines)
            + f"</preamble>\n\n<pid>{report.pid or 0}</pid>\n<ppid>0</ppid>\n"
            "<tool>memcheck</tool>\n\n"
            "<args>\n  <vargv>\n    <exe>leaktrace</exe>\n    <arg>--leak-check=full</arg>\n"
            f"    <arg>--show-leak-kinds={kind_list_text(shown) or 'none'}</arg>\n  </vargv>\n"
            f"  <argv>\n{argv}  </argv>\n</args>\n\n"
            "<status>\n  <state>RUNNING</state>\n  <time>00:00:00:00.000 </time>\n</status>\n\n")


def _api_frame(api: str, shim: str) -> Frame:
    return Frame(address=0, function=api, module=shim)


def _frame(frame: Frame) -> str:
    parts = [f"    <frame>\n      <ip>0x{frame.address:X}</ip>\n"]  # valgrind's 0x4841F2F
    if frame.module:
        parts.append(f"      <obj>{escape(frame.module)}</obj>\n")
    if frame.function:
        parts.append(f"      <fn>{escape(frame.function)}</fn>\n")
    if frame.file and frame.line:
        directory, name = os.path.split(frame.file)
        if directory:
            parts.append(f"      <dir>{escape(directory)}</dir>\n")
        parts.append(f"      <file>{escape(name)}</file>\n      <line>{frame.line}</line>\n")
    parts.append("    </frame>\n")
    return "".join(parts)


def _stack(head: Frame | None, frames: list[Frame]) -> str:
    """Down to main, as valgrind shows stacks (--show-below-main=no): tools that read its XML
    open the source file of every frame, and the C library's below main are not at hand."""
    from leaktrace.suppressions.generate import down_to_main

    return ("  <stack>\n" + (_frame(head) if head else "")
            + "".join(_frame(f) for f in down_to_main(frames)) + "  </stack>\n")


def _invalid_free(invalid: InvalidFree, unique: int, shim: str) -> str:
    if invalid.mismatched:
        kind, what = "MismatchedFree", "Mismatched free() / delete / delete []"
        aux = (f"Address {invalid.first_address:#x} is the start of a block "
               + ("allocated by operator new[]" if invalid.block_from_new_array
                  else "not allocated by operator new[]"))
    else:
        kind, what = "InvalidFree", "Invalid free() / delete / delete[] / realloc()"
        aux = f"Address {invalid.first_address:#x} was never allocated, or freed already"
    return (f"<error>\n  <unique>{unique:#x}</unique>\n  <tid>1</tid>\n  <kind>{kind}</kind>\n"
            f"  <what>{what}</what>\n{_stack(_api_frame(invalid.api, shim), invalid.frames)}"
            f"  <auxwhat>{escape(aux)}</auxwhat>\n</error>\n\n")


def _fatal_signal(fatal: FatalSignal, shim: str) -> str:
    address = f"  <siaddr>{fatal.address:#x}</siaddr>\n" if fatal.address is not None else ""
    return (f"<fatal_signal>\n  <tid>{1 if fatal.main_thread else fatal.thread_id}</tid>\n"
            f"  <signo>{fatal.signal}</signo>\n  <signame>{escape(fatal.name)}</signame>\n"
            f"  <sicode>{fatal.code}</sicode>\n{address}{_stack(None, fatal.frames)}"
            "</fatal_signal>\n\n")


def _counts(report: Report) -> str:
    errors = "".join(f"  <pair>\n    <count>{invalid.calls}</count>\n"
                     f"    <unique>{unique:#x}</unique>\n  </pair>\n"
                     for unique, invalid in enumerate(report.invalid_frees or ()))
    # valgrind counts suppressed errors: a loss record each, an invalid free each call.
    used = "".join(f"  <pair>\n    <count>{use.invalid_free_calls or use.records}</count>\n"
                   f"    <name>{escape(use.name)}</name>\n  </pair>\n"
                   for use in report.suppressions_used)
    return (f"<errorcounts>\n{errors}</errorcounts>\n\n<suppcounts>\n{used}</suppcounts>\n\n"
            "</valgrindoutput>\n")
