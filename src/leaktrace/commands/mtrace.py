"""`leaktrace mtrace [BINARY] LOGFILE`: a drop-in for glibc's `mtrace` script."""

from __future__ import annotations

import os
import sys
import time

import click

from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.commands._leak_gate import fail_on_leak_options
from leaktrace.commands._report_output import render_options, render_report_as
from leaktrace.commands.report import output_file_option
from leaktrace.errors import LeaktraceError
from leaktrace.input_files import file_type_name
from leaktrace.render.formats import REPORT_FORMATS, write_output
from leaktrace.render.mtrace_table import render_mtrace_table
from leaktrace.sources.mtrace_callers import CallerResolver, source_location
from leaktrace.sources.mtrace_log import read_mtrace_log
from leaktrace.sources.mtrace_report import build_report

MAX_MALFORMED_WARNINGS = 20  # past this, one summary line: a broken log must not flood stderr


class _MalformedLineReporter:
    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.count = 0
        self.first: tuple[int, str] | None = None

    def __call__(self, line_number: int, reason: str, raw: bytes) -> None:
        self.count += 1
        if self.first is None:
            self.first = (line_number, reason)
        if self.count <= MAX_MALFORMED_WARNINGS:
            text = raw[:120].decode("utf-8", errors="replace")
            warn(f"{self.log_path}:{line_number}: malformed line skipped ({reason}): {text!r}")

    def finish(self) -> None:
        if self.count > MAX_MALFORMED_WARNINGS:
            warn(f"{self.log_path}: {self.count} malformed lines skipped in all")


@click.command("mtrace")
@click.argument("arguments", metavar="[BINARY] LOGFILE", nargs=-1, required=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["mtrace", *REPORT_FORMATS]),
    default="mtrace",
    show_default=True,
    help="mtrace: glibc's table; text/json: a leaktrace report, leaks grouped by caller; "
         "html, folded, speedscope, pprof: docs/exports.md.",
)
@output_file_option
@render_options
@fail_on_leak_options
@one_line_errors
def mtrace_command(
    arguments: tuple[str, ...],
    output_format: str,
    output_file: str | None,
    top: int | None,
    min_bytes: int,
    show_addresses: bool,
    fail_on_leak: int | None,
    leak_exit_code: int,
) -> None:
    """Read a glibc MALLOC_TRACE log and list the memory never freed.

    BINARY, the traced program, resolves callers written relative to the program's working
    directory. glibc's script exits 1 when memory was not freed: --fail-on-leak
    --leak-exit-code 1 does the same.
    """
    if len(arguments) > 2:
        raise click.UsageError("expected [BINARY] LOGFILE")
    binary, log_path = (None, arguments[0]) if len(arguments) == 1 else arguments
    if binary is not None:
        _check_binary(binary)

    started = time.monotonic()
    malformed = _MalformedLineReporter(log_path)
    log = read_mtrace_log(log_path, malformed)
    malformed.finish()
    understood = log.counters["lines"] - malformed.count - log.counters["blank_lines"]
    if understood == 0 and not malformed.count:
        # glibc's script says "No memory leaks." here; but nothing was traced at all.
        raise LeaktraceError(
            f"{log_path} is empty: nothing was traced (the program did not call mtrace(), "
            "or MALLOC_TRACE was not set in its environment, or it could not write the log)"
        )
    if malformed.count and understood == 0 and malformed.first:
        line, reason = malformed.first
        raise LeaktraceError(
            f"{log_path} is not an mtrace log: no line could be read (line {line}: {reason})"
        )

    resolver = CallerResolver(binary)
    if output_format == "mtrace":
        callers = {block.caller for block in log.live}
        callers.update(a.caller for a in log.anomalies)
        callers.update(a.live_caller for a in log.anomalies)
        callers.discard("")
        # Looked up as glibc's script does, so that both print the same lines.
        resolved = resolver.resolve(callers, call_site=False)
        locations = {caller: source_location(frames) for caller, frames in resolved.items()}
        write_output(render_mtrace_table(log, locations.get), output_file)
    else:
        report = build_report(log, resolver, log_path=log_path)
        report.build_seconds = time.monotonic() - started
        rendered = render_report_as(
            report, output_format, top=top, min_bytes=min_bytes, show_addresses=show_addresses
        )
        if output_format == "text" and output_file in (None, "-"):
            from leaktrace.render.colors import colorize_report, use_color

            if use_color(sys.stdout):
                rendered = colorize_report(str(rendered))
        write_output(rendered, output_file)
    if fail_on_leak is not None and sum(block.size for block in log.live) > fail_on_leak:
        raise SystemExit(leak_exit_code)


def _check_binary(binary: str) -> None:
    if not os.path.exists(binary):
        raise LeaktraceError(f"{binary}: no such file (the traced program)")
    if not os.path.isfile(binary):
        mode = os.stat(binary).st_mode
        raise LeaktraceError(f"{binary}: is {file_type_name(mode)}, not the traced program")
