"""--fail-on-leak[=BYTES], --fail-on-kinds, --leak-exit-code and --error-exitcode: make leaks
and memory errors fail a CI job."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from leaktrace.commands._leak_kind_options import LEAK_KINDS_TYPE
from leaktrace.exit_codes import LEAKS_FOUND
from leaktrace.leak_kinds import DEFAULT_SHOWN, LEAK_KINDS, kind_list_text
from leaktrace.model import Report

F = TypeVar("F", bound=Callable[..., Any])


class ByteThreshold(click.IntRange):
    """--fail-on-leak's optional BYTES: a whole number (cli.py turns a bare --fail-on-leak
    before a file or PID into --fail-on-leak=0)."""

    def __init__(self) -> None:
        super().__init__(min=0)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip().isdigit():
            self.fail(f"{value!r} is not a number of bytes (--fail-on-leak=4096)", param, ctx)
        return super().convert(value, param, ctx)


def fail_on_leak_options(function: F) -> F:
    """--fail-on-leak[=BYTES] and --leak-exit-code, for the reports without leak kinds
    (mtrace)."""
    function = click.option(
        "--leak-exit-code", type=click.IntRange(1, 255), default=LEAKS_FOUND, show_default=True,
        help="Exit code used by --fail-on-leak.",
    )(function)
    function = click.option(
        "--fail-on-leak", type=ByteThreshold(), is_flag=False, flag_value=0, default=None,
        metavar="[=BYTES]",
        help="Exit with --leak-exit-code when more than BYTES (default 0) are still live and "
             "not suppressed. Give BYTES with '=': --fail-on-leak=4096.",
    )(function)
    return function


@dataclass(frozen=True)
class LeakGate:
    """What leak_gate_options() asked for: when a report fails the job, and with which code."""

    fail_on_leak: int | None = None
    fail_on_kinds: frozenset[str] = DEFAULT_SHOWN
    leak_exit_code: int = LEAKS_FOUND
    error_exitcode: int | None = None

    def exit_code(self, reports: Iterable[Report]) -> int | None:
        """--error-exitcode when a report has an error (an invalid free, or a leaked byte of
        the counted kinds), else --leak-exit-code when one exceeds --fail-on-leak, else None.
        Errors first: a double free is the graver news."""
        reports = list(reports)
        if self.error_exitcode is not None and any(
                has_errors(report, self.fail_on_kinds) for report in reports):
            return self.error_exitcode
        if any(leaks_exceed(report, self.fail_on_leak, self.fail_on_kinds) for report in reports):
            return self.leak_exit_code
        return None

    def why(self, code: int) -> str:
        """What chose exit code `code` (for end_gated's message)."""
        return ("--error-exitcode: the run had memory errors" if code == self.error_exitcode
                else "--fail-on-leak exceeded")


def leak_gate_options(function: F) -> F:
    """--fail-on-leak[=BYTES], --fail-on-kinds, --leak-exit-code and --error-exitcode, handed
    to the command as one `gate: LeakGate` keyword argument."""

    @functools.wraps(function)
    def with_gate(*args: Any, **options: Any) -> Any:
        gate = LeakGate(options.pop("fail_on_leak"), options.pop("fail_on_kinds"),
                        options.pop("leak_exit_code"), options.pop("error_exitcode"))
        return function(*args, gate=gate, **options)

    decorated: Any = with_gate
    decorated = click.option(
        "--error-exitcode", type=click.IntRange(1, 255), default=None, metavar="CODE",
        help="Exit with CODE when the run had a memory error, as valgrind's --error-exitcode "
             "with a full leak check: an invalid free (a double free, a free of an address "
             "malloc never returned), or a leaked byte of the --fail-on-kinds kinds (never "
             "what a suppression matched). Checked before --fail-on-leak.",
    )(decorated)
    decorated = click.option(
        "--leak-exit-code", type=click.IntRange(1, 255), default=LEAKS_FOUND, show_default=True,
        help="Exit code used by --fail-on-leak.",
    )(decorated)
    decorated = click.option(
        "--fail-on-kinds", type=LEAK_KINDS_TYPE, default=kind_list_text(DEFAULT_SHOWN),
        show_default=True,
        help="Leak kinds --fail-on-leak and --error-exitcode count (as valgrind's "
             "--errors-for-leak-kinds): definite,indirect,possible,reachable (any of them), "
             "all or none.",
    )(decorated)
    decorated = click.option(
        "--fail-on-leak", type=ByteThreshold(), is_flag=False, flag_value=0, default=None,
        metavar="[=BYTES]",
        help="Exit with --leak-exit-code when more than BYTES (default 0) leaked. After a "
             "reachability scan, the bytes of the --fail-on-kinds kinds count (definitely "
             "and possibly lost by default, never what a suppression matched); without one, "
             "every live byte not suppressed. Give BYTES with '=': --fail-on-leak=4096.",
    )(decorated)
    return decorated  # type: ignore[no-any-return]


def invalid_free_calls(report: Report) -> int:
    """Calls that freed or reallocated an address not allocated (None: not checked, 0)."""
    return sum(f.calls for f in report.invalid_frees or ()) + report.invalid_frees_unrecorded


def has_errors(report: Report, kinds: frozenset[str]) -> bool:
    """What --error-exitcode counts: an invalid free, or a leaked byte of the given kinds."""
    return invalid_free_calls(report) > 0 or leaked_bytes(report, kinds) > 0


def leaked_bytes(report: Report, kinds: frozenset[str]) -> int:
    """What --fail-on-leak compares with its threshold: the blocks' own bytes (as in the
    LEAK SUMMARY) of the given kinds, or without a scan every live byte not suppressed.
    --top and --min-bytes only change what is shown, not this."""
    summary = report.summary
    if summary.leaks is None:
        return summary.live_bytes - summary.suppressed.bytes
    return sum(summary.leaks.of(kind).bytes for kind in kinds)


def leaks_exceed(report: Report, fail_on_leak: int | None,
                 kinds: frozenset[str] = DEFAULT_SHOWN) -> bool:
    """True when --fail-on-leak was given and the leaked bytes exceed its threshold. Kinds the
    source did not report (valgrind's --show-leak-kinds) cannot be counted: a warning says so."""
    if fail_on_leak is None:
        return False
    leaks = report.summary.leaks
    unknown = [kind for kind in LEAK_KINDS
               if kind in kinds and leaks is not None and kind in leaks.unknown_kinds]
    if unknown:
        from leaktrace.commands._errors import warn

        warn(f"--fail-on-leak: {', '.join(unknown)} unknown (not in the {report.source} "
             "output), not counted")
    return leaked_bytes(report, kinds) > fail_on_leak


def end_gated(returncode: int, gate: LeakGate, code: int) -> NoReturn:
    """run and valgrind, once the gate chose exit code `code`: that code, but a program killed
    by a signal still ends leaktrace with that signal, as valgrind's --error-exitcode leaves a
    crash's signal alone (a CI job fails either way, and the crash is the news)."""
    from leaktrace.commands._errors import warn
    from leaktrace.launcher.supervise import end_like, signal_description

    if returncode < 0:
        warn(f"{gate.why(code)}, but the program was "
             f"{signal_description(returncode)}: that decides the exit status")
        end_like(returncode)
    raise SystemExit(code)
