"""`leaktrace ps`: the traced processes of this user, from the sockets in the control
directory that belong to a live process and answer `status`."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from leaktrace.commands._errors import one_line_errors
from leaktrace.commands.report import format_option
from leaktrace.control.client import (
    ControlError,
    Target,
    control_dir,
    list_sockets,
    process_alive,
    send_command,
)
from leaktrace.render.process_status import render_process_table

PS_TIMEOUT = 2.0  # a process that cannot answer a status within this is left out


@click.command("ps")
@format_option
@click.option("-v", "--verbose", is_flag=True,
              help="Also say why a socket in the control directory was left out.")
@one_line_errors
def ps_command(output_format: str, verbose: bool) -> None:
    """List the traced processes you can control: pid, program, uptime, live bytes."""
    directory = control_dir()
    rows: list[dict[str, Any]] = []
    for target in list_sockets(directory):
        if not process_alive(target.pid):
            _forget_stale(target, verbose)
            continue
        try:
            answer = send_command(target.pid, "status", directory=directory,
                                  timeout=PS_TIMEOUT)
            rows.append({**answer, "pid": target.pid})  # the pid asked and checked
        except ControlError as e:
            if verbose:
                click.echo(f"leaktrace: skipped {target.path}: {e}", err=True)
    if output_format == "json":
        click.echo(json.dumps({"control_dir": directory, "processes": rows}, indent=2))
    else:
        click.echo(render_process_table(rows), nl=False)


def _forget_stale(target: Target, verbose: bool) -> None:
    """The process is gone but its socket stayed (killed before it could remove it). Only
    a socket of our own is removed: another user's file is theirs to clean."""
    try:
        st = os.lstat(target.path)
        if st.st_uid == os.getuid():
            os.unlink(target.path)
            if verbose:
                click.echo(f"leaktrace: removed {target.path} (process {target.pid} is gone)",
                           err=True)
    except OSError:
        pass  # already gone, or not ours to remove
