"""`leaktrace growth FILE|--pid PID`: which backtraces keep growing, from the snapshot
series in a capture (analyze/growth.py has the definitions)."""

from __future__ import annotations

import click

from leaktrace.analyze.growth import TIMELINE_STACKS, analyze_growth, describe_stacks
from leaktrace.capture.reader import read_capture
from leaktrace.commands._errors import CommandError, one_line_errors, warn
from leaktrace.commands._live_capture import request_capture
from leaktrace.commands.report import format_option
from leaktrace.render.growth_json import render_growth_json
from leaktrace.render.growth_plot import PLOTTED_STACKS, write_growth_plot
from leaktrace.render.growth_text import render_growth_text


@click.command("growth")
@click.argument("capture_file", metavar="[FILE]", required=False)
@click.option("--pid", type=click.IntRange(min=1), default=None,
              help="Ask running process PID for a capture now, and analyze that.")
@format_option
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Also draw live bytes over time of the top backtraces (.svg, or .png with "
                   "matplotlib installed).")
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Show only the N highest-ranked backtraces (default: all).")
@one_line_errors
def growth_command(capture_file: str | None, pid: int | None, output_format: str,
                   plot_file: str | None, top: int | None) -> None:
    """Per backtrace, how live memory grew over time: allocations and unfreed blocks per
    interval, a ranking, and a verdict (growing, plateaued or stable)."""
    if (capture_file is None) == (pid is None):
        raise CommandError("give a capture FILE or --pid PID (one of them)")
    if pid is not None:
        capture_file = request_capture(pid)
    assert capture_file is not None
    capture = read_capture(capture_file)
    if capture.series is None:
        warn(f"{capture_file} has no snapshot series (written by an older shim, or from a "
             "signal handler): one interval only")
    analysis = analyze_growth(capture)
    plotted = min(top or PLOTTED_STACKS, TIMELINE_STACKS) if plot_file else 0
    shown = None if top is None else max(top, plotted)
    describe_stacks(capture, analysis, limit=shown)
    if output_format == "json":
        click.echo(render_growth_json(analysis, top), nl=False)
    else:
        click.echo(render_growth_text(analysis, top), nl=False)
    if plot_file is not None:
        written = write_growth_plot(plot_file, analysis, top)
        if written != plot_file:
            warn(f"matplotlib is not installed: wrote an SVG plot, {written}, instead of PNG")
        click.echo(f"leaktrace: plot written to {written}", err=True)
