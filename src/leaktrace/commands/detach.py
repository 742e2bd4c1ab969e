"""`leaktrace detach PID`: end an attach session that its `leaktrace attach` no longer
watches (killed, or its terminal closed) and print the report."""

from __future__ import annotations

import signal
from typing import Any

import click

from leaktrace.attach.session import control_dir_for, detach
from leaktrace.attach.signal_watch import SignalWatch
from leaktrace.commands._attach_report import (
    ReportChoices,
    check_suppressions,
    print_capture_report,
    report_options,
    stop_printing_on_ctrl_c,
    window_text,
)
from leaktrace.commands._errors import one_line_errors


@click.command("detach")
@click.argument("pid", type=click.IntRange(min=1))
@report_options
@one_line_errors
def detach_command(pid: int, **options: Any) -> None:
    """Stop collecting in process PID (attached with `leaktrace attach`), restore it as it
    was, and report the leaks of the collection window."""
    choices = ReportChoices.take(options)
    check_suppressions(choices)
    # Not cut short by Ctrl-C: the process detaches either way, and its capture is then ours.
    with SignalWatch({signal.SIGINT, signal.SIGTERM, signal.SIGHUP}):
        detached = detach(pid, control_dir_for(pid), scan=choices.scan)
        click.echo("leaktrace: collected "
                   f"{window_text(detached.attached_at, detached.detached_at)}", err=True)
        stop_printing_on_ctrl_c(detached.capture)
    raise SystemExit(print_capture_report(detached.capture, choices))
