"""Options of the commands that report a capture (`report`, `run`) about leak kinds and
suppressions: --show, --suppressions, --no-default-suppressions, --gen-suppressions, and the
KINDS parameter type that --fail-on-kinds shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from leaktrace.errors import LeaktraceError
from leaktrace.leak_kinds import DEFAULT_SHOWN, kind_list_text, parse_kind_list

F = TypeVar("F", bound=Callable[..., Any])


class LeakKindsType(click.ParamType):
    """valgrind's kind lists: definite,indirect,possible,reachable (any of them), all, none."""

    name = "KINDS"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> frozenset[str]:
        if isinstance(value, frozenset):
            return value
        try:
            return parse_kind_list(str(value))
        except LeaktraceError as e:
            self.fail(str(e), param, ctx)


LEAK_KINDS_TYPE = LeakKindsType()


def suppression_options(function: F) -> F:
    """--suppressions, --no-default-suppressions, --gen-suppressions."""
    function = _gen_suppressions_option(function)
    function = click.option(
        "--no-default-suppressions", is_flag=True,
        help="Also report what glibc, libstdc++ and ld.so keep until exit on purpose "
             "(leaktrace's default.supp, see docs/user-guide.md). valgrind XML never gets "
             "that list: valgrind applied its own defaults.",
    )(function)
    return _suppressions_option(function)


def _gen_suppressions_option(function: F) -> F:
    return click.option(
        "--gen-suppressions", is_flag=True,
        help="After each loss record shown, print a valgrind suppression entry for it "
             "(ready for --suppressions, and for valgrind itself).",
    )(function)


def _suppressions_option(function: F) -> F:
    return click.option(
        "--suppressions", "suppression_files", multiple=True, metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Leave out the leaks a suppression in FILE matches (valgrind's format or "
             "LeakSanitizer's leak: lines); they count as 'suppressed'. Repeatable.",
    )(function)


def leak_kind_options(function: F) -> F:
    """--show and the suppression options."""
    return _show_option(suppression_options(function))


def valgrind_leak_kind_options(function: F) -> F:
    """--show, --suppressions and --gen-suppressions for valgrind's findings: leaktrace's
    default list is not applied to them (valgrind applied its own default suppressions), so
    there is no --no-default-suppressions."""
    return _show_option(_suppressions_option(_gen_suppressions_option(function)))


def _show_option(function: F) -> F:
    function = click.option(
        "--show", "show_kinds", type=LEAK_KINDS_TYPE, default=kind_list_text(DEFAULT_SHOWN),
        show_default=True,
        help="Leak kinds whose loss records are listed, as valgrind's --show-leak-kinds: "
             "definite,indirect,possible,reachable (any of them), all or none. Only after a "
             "reachability scan; the LEAK SUMMARY always counts every kind.",
    )(function)
    return function

