"""Ask a running traced process for a capture (`report` or `scan` on its control socket) and
say where it went."""

from __future__ import annotations

import os

import click

from leaktrace.control.client import ControlError, send_command
from leaktrace.proc_view import proc_dir


def request_capture(pid: int, command: str = "report", *, quiet: bool = False) -> str:
    """The path of the capture process `pid` wrote on `command`."""
    answer = send_command(pid, command)
    path = answer.get("capture")
    if not isinstance(path, str) or not path:
        raise ControlError(f"process {pid} answered `{command}` without a capture path")
    if not os.path.isabs(path):
        # The shim names it from its own working directory (no LEAKTRACE_DIR set).
        path = os.path.join(os.readlink(f"{proc_dir(pid)}/cwd"), path)
    if not quiet:
        click.echo(f"leaktrace: process {pid} wrote {path}", err=True)
    return path
