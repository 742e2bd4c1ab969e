"""`leaktrace shell PID`: an interactive prompt on a running traced process."""

from __future__ import annotations

import click

from leaktrace.commands._errors import one_line_errors
from leaktrace.control.client import find_target, send_command


@click.command("shell")
@click.argument("pid", type=click.IntRange(min=1))
@one_line_errors
def shell_command(pid: int) -> None:
    """Interactive prompt on traced process PID: status, top, dump, growth, reset, pause,
    resume, report, scan (type help inside)."""
    from leaktrace.shell.prompt import LeakShell

    find_target(pid)  # a clear error now rather than at the first command
    status = send_command(pid, "status")
    shell = LeakShell(pid)
    shell.intro = (f"leaktrace shell on {status.get('program')} (pid {pid}); type help, "
                   "quit to leave")
    try:
        shell.cmdloop()
    except KeyboardInterrupt:
        click.echo("")
    # 1 when the process exited under the shell, so a script can tell.
    raise SystemExit(shell.exit_code)
