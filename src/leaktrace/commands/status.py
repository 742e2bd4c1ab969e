"""`leaktrace status PID`: what the shim in a running process knows right now."""

from __future__ import annotations

import json

import click

from leaktrace.commands._errors import one_line_errors
from leaktrace.commands.report import format_option
from leaktrace.control.client import send_command
from leaktrace.render.process_status import render_status


@click.command("status")
@click.argument("pid", type=click.IntRange(min=1))
@format_option
@one_line_errors
def status_command(pid: int, output_format: str) -> None:
    """Show the live totals of traced process PID (from its control socket)."""
    answer = send_command(pid, "status")
    if output_format == "json":
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(render_status(answer), nl=False)
