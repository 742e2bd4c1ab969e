"""`leaktrace scan PID`: run the reachability scan in a running traced process now and show
its leak kinds (definitely, indirectly, possibly lost, still reachable)."""

from __future__ import annotations

import click

from leaktrace.commands._capture_report import load_capture_report
from leaktrace.commands._errors import one_line_errors
from leaktrace.commands._live_capture import request_capture
from leaktrace.commands._report_output import render_options, render_report
from leaktrace.commands.report import format_option


@click.command("scan")
@click.argument("pid", type=click.IntRange(min=1))
@format_option
@render_options
@one_line_errors
def scan_command(pid: int, output_format: str, top: int | None, min_bytes: int,
                 show_addresses: bool) -> None:
    """Scan traced process PID for unreachable blocks now (its threads stop briefly) and show
    the leak report with leak kinds."""
    path = request_capture(pid, "scan")
    report = load_capture_report(path, with_addresses=show_addresses).report
    click.echo(render_report(report, output_format, top=top, min_bytes=min_bytes,
                             show_addresses=show_addresses), nl=False)
