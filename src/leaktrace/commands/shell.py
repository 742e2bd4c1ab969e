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
    shell = LeakShell(pid, final_capture=final_capture_path(pid, status))
    shell.intro = (f"leaktrace shell on {status.get('program')} (pid {pid}); type help, "
                   "quit to leave")
    try:
        shell.cmdloop()
    except KeyboardInterrupt:
        click.echo("")
    # 2 when the process exited under the shell (as for a process that is gone), so a
    # script can tell.
    raise SystemExit(shell.exit_code)


def final_capture_path(pid: int, status: dict[str, object]) -> str | None:
    """Where the process will write its final capture (status's `capture`), made absolute
    from its working directory when relative."""
    import os

    from leaktrace.proc_view import proc_dir
    path = status.get("capture")
    if not isinstance(path, str) or not path:
        return None
    if not os.path.isabs(path):
        try:
            path = os.path.join(os.readlink(f"{proc_dir(pid)}/cwd"), path)
        except OSError:
            return None
    return path
