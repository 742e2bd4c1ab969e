"""`leaktrace scan PID`: run the reachability scan in a running traced process now and show
its leak kinds (definitely, indirectly, possibly lost, still reachable)."""

from __future__ import annotations

import click

from leaktrace.commands._capture_report import load_capture_report
from leaktrace.commands._errors import one_line_errors
from leaktrace.commands._leak_gate import LeakGate, leak_gate_options
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._live_capture import request_capture
from leaktrace.commands._report_output import (
    output_file_option,
    render_options,
    stream_report_as,
    write_report,
)
from leaktrace.commands.report import format_option
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions


@click.command("scan")
@click.argument("pid", type=click.IntRange(min=1))
@format_option
@output_file_option
@render_options
@leak_kind_options
@leak_gate_options
@one_line_errors
def scan_command(pid: int, output_format: str, output_file: str | None, top: int | None,
                 min_bytes: int,
                 show_addresses: bool, show_kinds: frozenset[str],
                 suppression_files: tuple[str, ...], no_default_suppressions: bool,
                 gen_suppressions: bool, gate: LeakGate) -> None:
    """Scan traced process PID for unreachable blocks now (its threads stop briefly) and show
    the leak report with leak kinds."""
    # Read before the scan: a bad suppression file should not cost a stop of the process.
    suppressions = load_suppressions(suppression_files, with_defaults=not no_default_suppressions)
    path = request_capture(pid, "scan")
    report = load_capture_report(path, with_addresses=show_addresses).report
    apply_suppressions(report, suppressions)
    rendered = stream_report_as(report, output_format, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                gen_suppressions=gen_suppressions)
    write_report(rendered, output_format, output_file)
    code = gate.exit_code([report])
    if code is not None:
        raise SystemExit(code)
