"""`leaktrace merge CAPTURE...`: one report whose backtraces add up over several processes
(pre-fork workers, --follow-children runs, many hosts), with each record's share per process
kept in the JSON."""

from __future__ import annotations

import os
import sys

import click

from leaktrace.commands._compare_inputs import load_reports
from leaktrace.commands._errors import one_line_errors
from leaktrace.commands._leak_gate import LeakGate, leak_gate_options
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._report_output import (
    output_file_option,
    render_options,
    report_format_option,
)
from leaktrace.render.formats import write_output
from leaktrace.render.options import RenderOptions


@click.command("merge")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...",
                type=click.Path(dir_okay=False))
@report_format_option
@output_file_option
@render_options
@leak_kind_options
@leak_gate_options
@one_line_errors
def merge_command(captures: tuple[str, ...], output_format: str, output_file: str | None,
                  top: int | None, min_bytes: int, show_addresses: bool,
                  show_kinds: frozenset[str], suppression_files: tuple[str, ...],
                  no_default_suppressions: bool, gen_suppressions: bool,
                  gate: LeakGate) -> None:
    """Add up the leaks of several captures (or valgrind XML files) into one report: the
    same backtrace (by its frames' names) in several processes is one record, its share per
    process kept (JSON: records[].by_process). The leak gates judge the sum: a CI job
    merges its test programs' captures and fails once."""
    from leaktrace.analyze.merge_reports import merge_reports

    refuse_a_file_twice(captures)
    reports = load_reports(captures, suppression_files, no_default_suppressions,
                           with_addresses=show_addresses)
    merged = merge_reports(reports)
    options = RenderOptions(top=top, min_bytes=min_bytes, show_addresses=show_addresses,
                            leak_kinds=show_kinds, gen_suppressions=gen_suppressions)
    rendered: str | bytes
    if output_format == "json":
        from leaktrace.render.merge_output import render_merged_json

        rendered = render_merged_json(merged, options)
    elif output_format == "text":
        from leaktrace.render.merge_output import render_merged_text

        rendered = render_merged_text(merged, options)
    elif output_format == "html":
        from leaktrace.render.merge_output import render_merged_html

        rendered = render_merged_html(merged, options)
    elif output_format == "pprof":
        from leaktrace.render.pprof import render_pprof

        rendered = render_pprof(merged.report, options, merged)
    else:
        from leaktrace.render.formats import render_as

        rendered = render_as(merged.report, output_format, options)
    if output_format == "text" and output_file in (None, "-"):
        from leaktrace.render.colors import colorize_report, use_color

        if use_color(sys.stdout):
            rendered = colorize_report(str(rendered))
    write_output(rendered, output_file)
    code = gate.exit_code([merged.report])
    if code is not None:
        raise SystemExit(code)


def refuse_a_file_twice(captures: tuple[str, ...]) -> None:
    """The same capture named twice (or by two names) would add its leaks to themselves."""
    seen: dict[tuple[int, int], str] = {}
    for name in captures:
        try:
            status = os.stat(name)
        except OSError:
            continue  # the reader says why it cannot be read
        first = seen.setdefault((status.st_dev, status.st_ino), name)
        if first is not name:
            same = "given twice" if first == name else f"the same file as {first}"
            raise click.UsageError(f"{name}: {same}: its leaks would be counted twice")
