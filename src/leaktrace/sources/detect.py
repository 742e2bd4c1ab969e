"""Open any file leaktrace can report on, choosing the reader from the file's first bytes:
a leaktrace capture (magic `LEAKTRC\\0`) or valgrind memcheck XML (`<?xml` ... `<valgrindoutput`).
"""

from __future__ import annotations

from leaktrace.capture.format import MAGIC
from leaktrace.errors import LeaktraceError
from leaktrace.input_files import open_regular
from leaktrace.model import Report
from leaktrace.sources import valgrind_xml

_SNIFF_BYTES = 4096  # enough for the XML declaration, comments and valgrind's root element


def sniff(path: str) -> str:
    """ "capture", "valgrind" or "mtrace"; raises LeaktraceError for anything else."""
    with open_regular(path, "report") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(MAGIC):
        return "capture"
    if valgrind_xml.is_valgrind_xml(head):
        return "valgrind"
    if head.lstrip().startswith(b"= Start") or head.lstrip().startswith(b"@ "):
        return "mtrace"
    if not head:
        raise LeaktraceError(f"{path}: empty file")
    raise LeaktraceError(f"{path}: not a leaktrace capture nor valgrind XML (unknown format)")


def load_any(path: str) -> Report:
    """The Report for a capture file or a valgrind XML file."""
    kind = sniff(path)
    if kind == "capture":
        from leaktrace.analyze.build_report import load_report

        return load_report(path)
    if kind == "valgrind":
        return valgrind_xml.load(path)
    raise LeaktraceError(f"{path}: an mtrace log: use `leaktrace mtrace [BINARY] {path}`")
