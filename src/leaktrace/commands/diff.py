"""`leaktrace diff BEFORE AFTER`: what changed between two captures (or valgrind XML files)
of the same program, per backtrace matched by its frames' names (so ASLR and rebuilds do
not break the match)."""

from __future__ import annotations

import sys

import click

from leaktrace.commands._compare_inputs import load_reports
from leaktrace.commands._errors import one_line_errors
from leaktrace.commands._leak_kind_options import LEAK_KINDS_TYPE
from leaktrace.commands.report import output_file_option
from leaktrace.leak_kinds import DEFAULT_SHOWN, kind_list_text
from leaktrace.render.formats import write_output
from leaktrace.render.options import RenderOptions, selected_records


@click.command("diff")
@click.argument("before", type=click.Path(dir_okay=False))
@click.argument("after", type=click.Path(dir_okay=False))
@click.option("--format", "output_format",
              type=click.Choice(["text", "json", "html", "folded", "speedscope", "pprof"]),
              default="text", show_default=True,
              help="text for people; json for tools; html for a browser; folded (BEFORE and "
                   "AFTER bytes: a differential flame graph), speedscope (both sides), pprof "
                   "(the change) (docs/exports.md).")
@output_file_option
@click.option("--show", "show_kinds", type=LEAK_KINDS_TYPE,
              default=kind_list_text(DEFAULT_SHOWN), show_default=True,
              help="Leak kinds compared: definite,indirect,possible,reachable, all or none.")
@click.option("--suppressions", "suppression_files", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False), help="Leave out what FILE suppresses.")
@click.option("--no-default-suppressions", is_flag=True,
              help="Also compare what glibc, libstdc++ and ld.so keep until exit.")
@click.option("--top", type=click.IntRange(min=0), default=None,
              help="Text: only the N largest changes.")
@click.option("--show-unchanged", is_flag=True, help="Text: also list stacks that did not change.")
@one_line_errors
def diff_command(before: str, after: str, output_format: str, output_file: str | None,
                 show_kinds: frozenset[str], suppression_files: tuple[str, ...],
                 no_default_suppressions: bool, top: int | None, show_unchanged: bool) -> None:
    """Compare two captures (or valgrind XML files) of the same program: per backtrace,
    bytes and blocks BEFORE and AFTER and the change; new and vanished backtraces."""
    from leaktrace.analyze.report_diff import diff_reports

    old, new = load_reports((before, after), suppression_files, no_default_suppressions)
    options = RenderOptions(leak_kinds=show_kinds)
    diff = diff_reports(old, new, selected_records(old, options), selected_records(new, options))
    if output_format == "json":
        from leaktrace.render.diff_json import render_diff_json

        write_output(render_diff_json(diff), output_file)
    elif output_format == "html":
        from leaktrace.render.diff_html import render_diff_html

        write_output(render_diff_html(diff), output_file)
    elif output_format in ("folded", "speedscope", "pprof"):
        from leaktrace.render import diff_exports

        rendered: str | bytes
        if output_format == "folded":
            rendered = diff_exports.render_diff_folded(diff)
        elif output_format == "speedscope":
            rendered = diff_exports.render_diff_speedscope(diff)
        else:
            rendered = diff_exports.render_diff_pprof(diff)
        write_output(rendered, output_file)
    else:
        from leaktrace.render.colors import colorize_diff, use_color
        from leaktrace.render.diff_text import render_diff_text

        text = render_diff_text(diff, top=top, show_unchanged=show_unchanged)
        if output_file in (None, "-") and use_color(sys.stdout):
            text = colorize_diff(text)
        write_output(text, output_file)
