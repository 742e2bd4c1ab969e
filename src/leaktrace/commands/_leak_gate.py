"""--fail-on-leak[=BYTES] and --leak-exit-code: make leaks fail a CI job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from leaktrace.exit_codes import LEAKS_FOUND
from leaktrace.model import Report

F = TypeVar("F", bound=Callable[..., Any])


def leak_gate_options(function: F) -> F:
    function = click.option(
        "--leak-exit-code", type=click.IntRange(1, 255), default=LEAKS_FOUND, show_default=True,
        help="Exit code used by --fail-on-leak.",
    )(function)
    function = click.option(
        "--fail-on-leak", type=click.IntRange(min=0), is_flag=False, flag_value=0, default=None,
        metavar="[=BYTES]",
        help="Exit with --leak-exit-code when more than BYTES (default 0) are still live at "
             "exit. Give BYTES with '=': --fail-on-leak=4096.",
    )(function)
    return function


def leaks_exceed(report: Report, fail_on_leak: int | None) -> bool:
    """True when --fail-on-leak was given and live bytes (all records, before --top and
    --min-bytes, which only change what is shown) exceed its threshold."""
    return fail_on_leak is not None and report.summary.live_bytes > fail_on_leak
