"""Options and output shared by the commands that print a leak Report (mtrace, valgrind):
the same --format/--top/--min-bytes/--show-addresses as every leaktrace report, rendered by
the common text and JSON renderers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from leaktrace.model import Report

F = TypeVar("F", bound=Callable[..., Any])


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
    from leaktrace.render.options import RenderOptions

    options = RenderOptions(top=top, min_bytes=min_bytes, show_addresses=show_addresses,
                            leak_kinds=leak_kinds, gen_suppressions=gen_suppressions)
    if output_format == "json":
        from leaktrace.render.json_report import render_json

        return render_json(report, options)
    from leaktrace.render.text import render_text

    return render_text(report, options)
