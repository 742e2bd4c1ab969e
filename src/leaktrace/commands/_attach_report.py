"""What `attach` and `detach` share: the report options of `leaktrace report` and --scan, and
what they print once the process has written its capture (the leak report on stdout, as `leaktrace
report` prints it; the capture path on stderr)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import click

from leaktrace.commands._capture_report import load_capture_report
from leaktrace.commands._leak_gate import LeakGate, leak_gate_options
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._report_output import for_stdout, render_options, render_report
from leaktrace.commands.report import format_option
from leaktrace.exit_codes import INTERRUPTED
from leaktrace.invocation import report_hint
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions

F = TypeVar("F", bound=Callable[..., Any])


def report_options(function: F) -> F:
    """The options of `leaktrace report FILE` about what is shown and the exit code, and
    --scan: a reachability scan before the capture written at detach, for leak kinds (--show
    and --fail-on-kinds act only then)."""
    function = click.option(
        "--scan", is_flag=True,
        help="Run the reachability scan just before detaching, as `leaktrace scan` does (the "
             "process's threads stop for its duration), so the report has leak kinds: "
             "definitely, indirectly, possibly lost, still reachable.",
    )(function)
    return format_option(render_options(leak_kind_options(leak_gate_options(function))))


@dataclass(frozen=True)
class ReportChoices:
    """The values of report_options(), as click passes them."""

    output_format: str
    top: int | None
    min_bytes: int
    show_addresses: bool
    show_kinds: frozenset[str]
    suppression_files: tuple[str, ...]
    no_default_suppressions: bool
    gen_suppressions: bool
    gate: LeakGate
    scan: bool

    @classmethod
    def take(cls, options: dict[str, Any]) -> ReportChoices:
        """Pop this dataclass's fields out of a click callback's keyword arguments."""
        names = cls.__dataclass_fields__
        return cls(**{name: options.pop(name) for name in list(options) if name in names})


def stop_printing_on_ctrl_c(capture: str) -> None:
    """From now to the exit a Ctrl-C ends leaktrace at once (130), saying where the capture
    is: the process is detached, only printing is left. Not a KeyboardInterrupt, which would
    land wherever Python runs next, in an import's or a weak reference's callback too, and be
    printed there as an ignored exception. Installed while a SignalWatch still holds SIGINT,
    which leaves it in place: no moment without it."""
    message = (f"leaktrace: interrupted; the capture is saved: {report_hint(capture)}\n"
               ).encode(errors="replace")

    def end(_signum: int, _frame: FrameType | None) -> None:
        os.write(2, message)
        os._exit(INTERRUPTED)

    signal.signal(signal.SIGINT, end)


def print_capture_report(capture: str, choices: ReportChoices) -> int:
    """Render the capture as `leaktrace report` would; return the exit code: 0, or
    --leak-exit-code when --fail-on-leak is exceeded. Call stop_printing_on_ctrl_c() first."""
    suppressions = load_suppressions(choices.suppression_files,
                                     with_defaults=not choices.no_default_suppressions)
    report = load_capture_report(capture, with_addresses=choices.show_addresses).report
    apply_suppressions(report, suppressions)
    click.echo(for_stdout(render_report(report, choices.output_format, top=choices.top,
                                        min_bytes=choices.min_bytes,
                                        show_addresses=choices.show_addresses,
                                        leak_kinds=choices.show_kinds,
                                        gen_suppressions=choices.gen_suppressions),
                          choices.output_format), nl=False)
    click.echo(f"leaktrace: capture saved to {capture}", err=True)
    click.echo(f"leaktrace: to see it again: {report_hint(capture)}", err=True)
    if report.summary.leaks is None and report.summary.live_blocks:
        click.echo("leaktrace: these blocks have no leak kinds; --scan runs the reachability "
                   "scan before detaching (definitely lost, still reachable...)", err=True)
    return choices.gate.exit_code([report]) or 0


def check_suppressions(choices: ReportChoices) -> None:
    """Read the suppression files now: a bad one should not cost a collection window."""
    load_suppressions(choices.suppression_files,
                      with_defaults=not choices.no_default_suppressions)


def clock_text(when: float) -> str:
    """12:04:05.123 (local time, to the millisecond)."""
    return time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d}"


def window_text(attached_at: float | None, ended_at: float) -> str:
    if attached_at is None:
        return f"until {clock_text(ended_at)}"
    return (f"from {clock_text(attached_at)} to {clock_text(ended_at)} "
            f"({max(ended_at - attached_at, 0.0):.1f} s)")
