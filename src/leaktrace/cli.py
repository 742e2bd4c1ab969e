"""The `leaktrace` command: a click group; each subcommand lives in leaktrace/commands/."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

# Each subcommand's module is imported only when that subcommand runs (or --help lists them):
# numpy, pyelftools and the analysis code stay off the start-up path of `--version` and of
# the light commands.
_COMMANDS: dict[str, str] = {
    "mtrace": "leaktrace.commands.mtrace:mtrace_command",
    "report": "leaktrace.commands.report:report_command",
    "dump": "leaktrace.commands.dump:dump_command",
    "run": "leaktrace.commands.run:run_command",
    "valgrind": "leaktrace.commands.valgrind:valgrind_command",
    "mem": "leaktrace.commands.mem:mem_command",
    "watch": "leaktrace.commands.watch:watch_command",
    "status": "leaktrace.commands.status:status_command",
    "ps": "leaktrace.commands.ps:ps_command",
    "growth": "leaktrace.commands.growth:growth_command",
    "scan": "leaktrace.commands.scan:scan_command",
    "shell": "leaktrace.commands.shell:shell_command",
    "attach": "leaktrace.commands.attach:attach_command",
    "detach": "leaktrace.commands.detach:detach_command",
    "diff": "leaktrace.commands.diff:diff_command",
    "merge": "leaktrace.commands.merge:merge_command",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        """Every subcommand, imported: for tools that walk the tree (click-man's man pages)."""
        loaded = {name: self.get_command(None, name) for name in _COMMANDS}  # type: ignore[arg-type]
        return {name: command for name, command in loaded.items() if command is not None}

    @commands.setter
    def commands(self, _value: object) -> None:
        """click.Group.__init__ sets an empty table; the table here is _COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        # numpy loads OpenBLAS, which starts a thread per CPU when it loads; leaktrace does no
        # linear algebra, so one is enough (a tenth of a second less at start). Set only
        # while the command's modules load: a program that `run` starts inherits our environment.
        added = "OPENBLAS_NUM_THREADS" not in os.environ
        if added:
            os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        finally:
            if added:
                os.environ.pop("OPENBLAS_NUM_THREADS", None)
        assert isinstance(command, click.Command)
        return command


class _OneLineErrorsGroup(_LazyGroup):
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
