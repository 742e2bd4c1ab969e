"""`leaktrace report FILE`: render a capture written by the shim."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from leaktrace.analyze.build_report import load_report
from leaktrace.commands._errors import one_line_errors
from leaktrace.commands._leak_gate import leak_gate_options, leaks_exceed
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._report_output import render_options, render_report
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions

F = TypeVar("F", bound=Callable[..., Any])


def format_option(function: F) -> F:
    return click.option(
        "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
        show_default=True, help="text for people; json for tools (docs/json-report.md).",
    )(function)


@click.command("report")
@click.argument("capture_file", metavar="FILE")
@format_option
@render_options
@leak_kind_options
@leak_gate_options
@one_line_errors
def report_command(capture_file: str, output_format: str, top: int | None, min_bytes: int,
                   show_addresses: bool, show_kinds: frozenset[str],
                   suppression_files: tuple[str, ...], no_default_suppressions: bool,
                   gen_suppressions: bool, fail_on_leak: int | None,
                   fail_on_kinds: frozenset[str], leak_exit_code: int) -> None:
    """Show the leaks recorded in a capture FILE (written by `leaktrace run`)."""
    suppressions = load_suppressions(suppression_files, with_defaults=not no_default_suppressions)
    report = load_report(capture_file, with_addresses=show_addresses)
    apply_suppressions(report, suppressions)
    text = render_report(report, output_format, top=top, min_bytes=min_bytes,
                         show_addresses=show_addresses, leak_kinds=show_kinds,
                         gen_suppressions=gen_suppressions)
    click.echo(text, nl=False)
    if leaks_exceed(report, fail_on_leak, fail_on_kinds):
        raise SystemExit(leak_exit_code)
