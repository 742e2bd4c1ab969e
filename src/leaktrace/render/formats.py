"""Every report format by name, and writing one to stdout or a file: text and JSON for
people and tools, folded/speedscope/pprof for profilers, HTML for a browser, valgrind's XML
for the tools that read valgrind's."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from leaktrace.errors import LeaktraceError
from leaktrace.model import Report
from leaktrace.render.options import RenderOptions

if TYPE_CHECKING:
    from leaktrace.render.html_report import Timeline

# Formats any leak report can be rendered in (report, run, merge).
REPORT_FORMATS = ["text", "json", "folded", "speedscope", "pprof", "html", "valgrind-xml"]
BINARY_FORMATS = frozenset({"pprof"})


def render_as(report: Report, output_format: str, options: RenderOptions,
              timeline: Timeline | None = None) -> str | bytes:
    """`timeline`: the growth section of the HTML page (other formats ignore it)."""
    if output_format == "html":
        from leaktrace.render.html_report import render_html

        return render_html(report, options, timeline)
    if output_format == "json":
        from leaktrace.render.json_report import render_json

        return render_json(report, options)
    if output_format == "folded":
        from leaktrace.render.folded import render_folded

        return render_folded(report, options)
    if output_format == "speedscope":
        from leaktrace.render.speedscope import render_speedscope

        return render_speedscope(report, options)
    if output_format == "pprof":
        from leaktrace.render.pprof import render_pprof

        return render_pprof(report, options)
    if output_format == "valgrind-xml":
        from leaktrace.render.valgrind_xml import render_valgrind_xml

        return render_valgrind_xml(report, options)
    from leaktrace.render.text import render_text

    return render_text(report, options)


def stream_as(report: Report, output_format: str, options: RenderOptions,
              timeline: Timeline | None = None) -> Iterable[str] | bytes:
    """As render_as, the text and JSON reports in pieces made while they are written (a big
    capture's report is never held whole)."""
    if output_format == "text":
        from leaktrace.render.text import text_chunks

        return text_chunks(report, options)
    if output_format == "json":
        from leaktrace.render.json_report import json_chunks

        return json_chunks(report, options)
    if output_format == "valgrind-xml":
        from leaktrace.render.valgrind_xml import valgrind_xml_chunks

        return valgrind_xml_chunks(report, options)
    rendered = render_as(report, output_format, options, timeline)
    return rendered if isinstance(rendered, bytes) else [rendered]


def refuse_to_overwrite_a_capture(path: str) -> None:
    """An output path that holds a capture (`report X.lt -o X.lt`, a mistyped `--html`) is
    refused, as `run -o` refuses one: leaktrace never overwrites a capture."""
    from leaktrace.capture.format import MAGIC
    from leaktrace.input_files import open_regular

    try:
        with open_regular(path, "output file") as existing:
            if existing.read(len(MAGIC)) != MAGIC:
                return
    except (LeaktraceError, OSError):
        return  # none, not a regular file, not readable: opening it for writing tells
    raise LeaktraceError(f"{path} is a capture: leaktrace never overwrites one (choose another "
                         "output file)")


def write_output(data: str | bytes | Iterable[str], path: str | None, *,
                 stream: str = "stdout") -> None:
    """To `path` ('-' or None: to `stream`, stdout or stderr). Binary data is never written
    to a terminal: it would only garble it. Text may come in pieces."""
    if path is not None and path != "-":
        refuse_to_overwrite_a_capture(path)
        if isinstance(data, bytes):
            with open(path, "wb") as binary:
                binary.write(data)
        else:
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as text:
                _write_pieces(text, [data] if isinstance(data, str) else data)
        return
    out = sys.stdout if stream == "stdout" else sys.stderr
    if isinstance(data, bytes):
        if out.isatty():
            raise LeaktraceError("this format is binary: write it to a file with -o FILE, "
                                 "or pipe it")
        out.flush()
        out.buffer.write(data)
        out.buffer.flush()
    else:
        _write_pieces(out, [data] if isinstance(data, str) else data)
        out.flush()


# Text written to a regular file is handed to the disk and dropped from the page cache every
# this many characters: a 1.9 GB report cost this project's VMs 5-14 s of system time in new
# page cache pages, 0.8 s when the same few pages are reused (docs/benchmarks-shim.md,
# "Fifth pass").
_SYNC_EVERY = 64 << 20


def _write_pieces(out: TextIO, pieces: Iterable[str]) -> None:
    """out.writelines(pieces); into a regular file, every _SYNC_EVERY characters the file is
    synced (fdatasync) and what was written dropped from the page cache (posix_fadvise
    DONTNEED), so a big report does not fill memory with its own pages."""
    regular = _regular_file(out)
    written = synced = 0
    dropped_to = 0  # bytes of the file already out of the page cache
    for piece in pieces:
        out.write(piece)
        written += len(piece)
        if regular and written - synced >= _SYNC_EVERY:
            synced = written
            out.flush()
            try:
                fd = out.fileno()
                os.fdatasync(fd)
                end = os.lseek(fd, 0, os.SEEK_CUR)
                os.posix_fadvise(fd, dropped_to, end - dropped_to, os.POSIX_FADV_DONTNEED)
                dropped_to = end
            except (OSError, AttributeError, ValueError):
                regular = False  # a file system that refuses: written as it comes


def _regular_file(out: TextIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    except (OSError, AttributeError, ValueError):  # no file descriptor (a StringIO...)
        return False
