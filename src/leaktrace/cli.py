"""The `leaktrace` command: a click group; each subcommand lives in leaktrace/commands/."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from leaktrace.commands.attach import attach_command
from leaktrace.commands.detach import detach_command
from leaktrace.commands.diff import diff_command
from leaktrace.commands.dump import dump_command
from leaktrace.commands.growth import growth_command
from leaktrace.commands.mem import mem_command
from leaktrace.commands.merge import merge_command
from leaktrace.commands.mtrace import mtrace_command
from leaktrace.commands.ps import ps_command
from leaktrace.commands.report import report_command
from leaktrace.commands.run import run_command
from leaktrace.commands.scan import scan_command
from leaktrace.commands.shell import shell_command
from leaktrace.commands.status import status_command
from leaktrace.commands.valgrind import valgrind_command
from leaktrace.commands.watch import watch_command


class _OneLineErrorsGroup(click.Group):
    """Usage errors as one `leaktrace: error: ...` line (click prints usage and 'Error:' on
    several), and no traceback when stdout is a closed pipe (`leaktrace report F | head`)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        _write_names_as_bytes()
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as e:
            hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            click.echo(f"leaktrace: error: {e.format_message()}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            if type(e).show is click.ClickException.show:
                click.echo(f"leaktrace: error: {e.format_message()}", err=True)
            else:
                e.show()  # commands' own errors already print one line
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("leaktrace: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away: stop quietly, and keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _write_names_as_bytes() -> None:
    """File and program names are bytes that need not be UTF-8: the readers keep them as
    os.fsdecode makes them (surrogate escapes), and the text output writes those bytes back
    as they were, as ls and valgrind do, instead of failing on them."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "surrogateescape":
            stream.reconfigure(errors="surrogateescape")


@click.group(cls=_OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leaktrace", message="leaktrace %(version)s")
def main() -> None:
    """Find native heap leaks in Linux programs."""


main.add_command(mtrace_command)
main.add_command(report_command)
main.add_command(dump_command)
main.add_command(run_command)
main.add_command(valgrind_command)
main.add_command(mem_command)
main.add_command(watch_command)
main.add_command(status_command)
main.add_command(ps_command)
main.add_command(growth_command)
main.add_command(scan_command)
main.add_command(shell_command)
main.add_command(attach_command)
main.add_command(detach_command)
main.add_command(diff_command)
main.add_command(merge_command)
