"""`leaktrace report FILE` / `leaktrace report --pid PID`: render a capture written by the
shim, or ask a running process for one now; either way with the change since the previous
capture of the process and each backtrace's growth when the capture has them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from leaktrace.commands._capture_report import CaptureReport, load_capture_report
from leaktrace.commands._errors import CommandError, one_line_errors, warn
from leaktrace.commands._gc import without_cycle_collection
from leaktrace.commands._html_timeline import html_timeline
from leaktrace.commands._leak_gate import LeakGate, leak_gate_options
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._live_capture import request_capture
from leaktrace.commands._report_output import (
    output_file_option,
    render_options,
    report_format_option,
    stream_report_as,
    write_report,
)
from leaktrace.sources.detect import load_any, sniff
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions

F = TypeVar("F", bound=Callable[..., Any])


def format_option(function: F) -> F:
    return click.option(
        "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
        show_default=True, help="text for people; json for tools (docs/json-report.md).",
    )(function)


@click.command("report")
@click.argument("capture_file", metavar="[FILE]", required=False)
@click.option("--pid", type=click.IntRange(min=1), default=None,
              help="Ask running traced process PID for a capture now and show it, with what "
                   "changed since its previous capture.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Also draw live bytes over time of the top backtraces (.svg, or .png with "
                   "matplotlib installed).")
@report_format_option
@output_file_option
@render_options
@leak_kind_options
@leak_gate_options
@one_line_errors
@without_cycle_collection
def report_command(capture_file: str | None, pid: int | None, plot_file: str | None,
                   output_format: str, output_file: str | None, top: int | None,
                   min_bytes: int,
                   show_addresses: bool, show_kinds: frozenset[str],
                   suppression_files: tuple[str, ...], no_default_suppressions: bool,
                   gen_suppressions: bool, gate: LeakGate) -> None:
    """Show the leaks recorded in a capture FILE (written by `leaktrace run`) or in a valgrind
    memcheck XML FILE (valgrind --xml=yes --xml-file=FILE: valgrind's own LEAK SUMMARY), or in
    a capture that running traced process PID writes now (--pid)."""
    if (capture_file is None) == (pid is None):
        raise CommandError("give a capture FILE or --pid PID (one of them)")
    source = "capture" if pid is not None else sniff(capture_file or "")
    # valgrind applied its own default suppressions: its XML is shown as valgrind judged it,
    # so that its LEAK SUMMARY is valgrind's.
    suppressions = load_suppressions(
        suppression_files, with_defaults=not no_default_suppressions and source != "valgrind")
    if pid is not None:
        capture_file = request_capture(pid)
    assert capture_file is not None
    loaded: CaptureReport | None = None
    if source != "capture":
        report = load_any(capture_file)  # valgrind memcheck XML (an mtrace log: a pointer)
    else:
        loaded = load_capture_report(capture_file, with_addresses=show_addresses)
        report = loaded.report
    apply_suppressions(report, suppressions)
    timeline = html_timeline(loaded) if output_format == "html" else None
    rendered = stream_report_as(report, output_format, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                gen_suppressions=gen_suppressions, timeline=timeline)
    write_report(rendered, output_format, output_file)
    if plot_file is not None:
        if loaded is None:
            raise CommandError("--plot needs a leaktrace capture (it plots its snapshot series)")
        _plot(loaded, plot_file, top)
    code = gate.exit_code([report])
    if code is not None:
        raise SystemExit(code)


def _plot(loaded: CaptureReport, plot_file: str, top: int | None) -> None:
    from leaktrace.analyze.growth import TIMELINE_STACKS, describe_stacks
    from leaktrace.render.growth_plot import write_growth_plot

    if loaded.growth is None:
        raise CommandError(f"{loaded.capture.path} has no snapshot series to plot")
    describe_stacks(loaded.capture, loaded.growth, limit=TIMELINE_STACKS)
    written = write_growth_plot(plot_file, loaded.growth, top)
    if written != plot_file:
        warn(f"matplotlib is not installed: wrote an SVG plot, {written}, instead of PNG")
    click.echo(f"leaktrace: plot written to {written}", err=True)
