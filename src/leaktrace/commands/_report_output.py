"""Options and output shared by the commands that print a leak Report (mtrace, valgrind):
the same --format/--top/--min-bytes/--show-addresses as every leaktrace report, rendered by
the common text and JSON renderers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from leaktrace.model import Report

if TYPE_CHECKING:
    from leaktrace.render.html_report import Timeline

F = TypeVar("F", bound=Callable[..., Any])


def report_format_option(function: F) -> F:
    """--format with every report format (format_option is the text/json one other
    commands share)."""
    from leaktrace.render.formats import REPORT_FORMATS

    return click.option(
        "--format", "output_format", type=click.Choice(REPORT_FORMATS), default="text",
        show_default=True,
        help="text for people; json for tools (docs/json-report.md); folded, speedscope, "
             "pprof for flame graphs and profilers; html for a browser; valgrind-xml for "
             "what reads valgrind's --xml=yes output (docs/exports.md).",
    )(function)


def _output_option(help_text: str) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        return click.option(
            "-o", "--output", "output_file", type=click.Path(dir_okay=False, allow_dash=True),
            default=None, help=help_text,
        )(function)
    return decorate


output_file_option = _output_option("Write the report to FILE instead of stdout.")
# For a command that runs the program: its report goes to stderr by default, as valgrind's
# does, since the program's own output has stdout.
program_report_file_option = _output_option(
    "Write the report to FILE ('-': stdout) instead of stderr, where the report goes so that "
    "the program's stdout stays its own.")


def render_options(function: F) -> F:
    """--top, --min-bytes and --show-addresses, as RenderOptions takes them."""
    function = click.option(
        "--show-addresses", is_flag=True, help="List the address of every leaked block."
    )(function)
    function = click.option(
        "--min-bytes",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Hide leak records smaller than this.",
    )(function)
    function = click.option(
        "--top",
        type=click.IntRange(min=0),
        default=None,
        help="Show only the N largest leak records (default: all).",
    )(function)
    return function


def render_report(
    report: Report, output_format: str, *, top: int | None, min_bytes: int, show_addresses: bool,
    leak_kinds: frozenset[str] | None = None, gen_suppressions: bool = False,
) -> str:
    """The report as text or JSON, through the renderers every leaktrace source shares.
    `leak_kinds`: the loss records to list (--show); None lists every kind."""
    rendered = render_report_as(report, output_format, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=leak_kinds,
                                gen_suppressions=gen_suppressions)
    assert isinstance(rendered, str), "binary formats go through render_report_as"
    return rendered


def for_stdout(rendered: str, output_format: str, stream: TextIO | None = None) -> str:
    """A text report coloured when stdout (or `stream`) is a terminal (NO_COLOR and TERM=dumb
    respected), as every command that prints one does."""
    import sys

    from leaktrace.render.colors import colorize_report, use_color

    if output_format == "text" and use_color(stream or sys.stdout):
        return colorize_report(rendered)
    return rendered


def render_report_as(
    report: Report, output_format: str, *, top: int | None, min_bytes: int, show_addresses: bool,
    leak_kinds: frozenset[str] | None = None, gen_suppressions: bool = False,
    timeline: Timeline | None = None,
) -> str | bytes:
    """The report in any format of render/formats.py (pprof is bytes); `timeline` is the
    growth section of the HTML page."""
    from leaktrace.render.formats import render_as
    from leaktrace.render.options import RenderOptions

    options = RenderOptions(top=top, min_bytes=min_bytes, show_addresses=show_addresses,
                            leak_kinds=leak_kinds, gen_suppressions=gen_suppressions)
    return render_as(report, output_format, options, timeline)


def write_report(rendered: Iterable[str] | bytes, output_format: str,
                 output_file: str | None) -> None:
    """Writes a rendered report to output_file (None or '-': stdout), coloured when it is
    text going to a terminal."""
    import sys

    from leaktrace.render.colors import colorize_report, use_color
    from leaktrace.render.formats import write_output

    if output_format == "text" and output_file in (None, "-") and use_color(sys.stdout):
        assert not isinstance(rendered, bytes)
        rendered = colorize_report("".join(rendered))
    write_output(rendered, output_file)


def stream_report_as(
    report: Report, output_format: str, *, top: int | None, min_bytes: int, show_addresses: bool,
    leak_kinds: frozenset[str] | None = None, gen_suppressions: bool = False,
    timeline: Timeline | None = None,
) -> Iterable[str] | bytes:
    """render_report_as for write_output: text and JSON in pieces, made as they are written."""
    from leaktrace.render.formats import stream_as
    from leaktrace.render.options import RenderOptions

    options = RenderOptions(top=top, min_bytes=min_bytes, show_addresses=show_addresses,
                            leak_kinds=leak_kinds, gen_suppressions=gen_suppressions)
    return stream_as(report, output_format, options, timeline)
