"""The `leaktrace` command: a click group; each subcommand lives in leaktrace/commands/."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from leaktrace.exit_codes import BROKEN_PIPE, INTERRUPTED, POLICY_TEXT
from leaktrace.numpy_pages import one_blas_thread

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
    "include-dir": "leaktrace.commands.include_dir:include_dir_command",
}


# One line each in `leaktrace --help`: what the command is for, whole.
SHORT_HELP = {
    "run": "Run a program under the shim; report its leaks when it ends.",
    "report": "Show the leaks of a capture, a valgrind XML file, or a live process.",
    "dump": "Print every record of a capture, unsymbolized (for debugging).",
    "attach": "Trace a running process for a while, then report (no restart).",
    "detach": "End an attach session and print its report.",
    "status": "Live totals of a traced process.",
    "scan": "Reachability scan of a traced process now: leak kinds.",
    "ps": "List the traced processes you can control.",
    "shell": "Interactive prompt on a traced process.",
    "growth": "Per backtrace, how live memory grew over the run.",
    "diff": "What changed between two captures, per backtrace.",
    "merge": "Add up the leaks of several captures into one report.",
    "mtrace": "Read a glibc MALLOC_TRACE log, like glibc's mtrace script.",
    "valgrind": "Run valgrind memcheck; show its leaks as a leaktrace report.",
    "mem": "A process's memory by mapping.",
    "watch": "Sample a process's memory; say whether it grows.",
    "include-dir": "Where leaktrace/annotate.h is (custom-allocator annotations).",
}

# An example per command, shown at the end of its --help.
EXAMPLES = {
    "run": "leaktrace run --fail-on-leak -- ./server --port 8080",
    "report": "leaktrace report --show all --top 5 leaktrace-server.4242.lt",
    "dump": "leaktrace dump leaktrace-server.4242.lt | less",
    "attach": "leaktrace attach --duration 60 4242",
    "detach": "leaktrace detach 4242",
    "status": "leaktrace status 4242",
    "scan": "leaktrace scan --show all 4242",
    "ps": "leaktrace ps",
    "shell": "leaktrace shell 4242",
    "growth": "leaktrace growth --pid 4242",
    "diff": "leaktrace diff leaktrace-server.4242.lt leaktrace-server.4343.lt",
    "merge": "leaktrace merge leaktrace-worker.*.lt",
    "mtrace": "leaktrace mtrace ./prog trace.log",
    "valgrind": "leaktrace valgrind --fail-on-leak -- ./server --port 8080",
    "mem": "leaktrace mem 4242",
    "watch": "leaktrace watch --duration 60 4242",
    "include-dir": 'gcc -I"$(leaktrace include-dir)" -o pool pool.c',
}

# The variables a user may set; the launcher sets the others (docs/architecture.md).
ENVIRONMENT = """\
Environment (read by the shim in the traced program, or by leaktrace; `run` sets those
marked * from its options only, an inherited one is dropped: they are for a shim preloaded
without leaktrace):
  LEAKTRACE_SHIM=PATH        the shim library to use instead of the installed one
  LEAKTRACE_MAX_DEPTH=N      frames kept per backtrace (default 64; run --max-depth)
  LEAKTRACE_INTERVAL=SECS    seconds between snapshots (default 1; run --interval)
  LEAKTRACE_START=WHEN       at-load (default) or on-mtrace (run --start)
 *LEAKTRACE_FOLLOW_CHILDREN=1  children write captures too (run --follow-children)
 *LEAKTRACE_SKIP_CHILDREN=PATTERNS  children left out of that (run --skip-children)
 *LEAKTRACE_OUTPUT=FILE      capture path (run -o)
  LEAKTRACE_DIR=DIR          where default-named captures go (default: the current directory)
 *LEAKTRACE_MTRACE_LOG=FILE  also write a MALLOC_TRACE log with backtraces (run --mtrace-log)
  LEAKTRACE_SAMPLE=BYTES     sampling mode: one sample per BYTES allocated (run --sample)
  LEAKTRACE_SIGNALS=0        no capture when a signal kills the program
  LEAKTRACE_SCAN=0           no reachability scan at exit (no leak kinds)
  LEAKTRACE_FREERES=0        do not free glibc's and libstdc++'s buffers before the scan
  LEAKTRACE_HEURISTICS=LIST  valgrind's interior-pointer heuristics (default all)
  LEAKTRACE_CONTROL=0        no control socket (status, report --pid, scan, shell)
  LEAKTRACE_CONTROL_DIR=DIR  where the control sockets are"""


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
        with one_blas_thread():  # the command's modules may import numpy
            command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        command.short_help = SHORT_HELP[cmd_name]  # whole, in `leaktrace --help`
        command.epilog = f"Example: {EXAMPLES[cmd_name]}"
        return command


def _bare_fail_on_leak(args: Sequence[str]) -> list[str]:
    """--fail-on-leak[=BYTES] takes an optional value, and click would give it the next
    argument whatever it is: `report --fail-on-leak FILE` would read FILE as BYTES. A bare
    --fail-on-leak before something that is not a number means --fail-on-leak=0. Nothing
    after `--` (the traced program's own arguments) is touched."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--fail-on-leak" and i + 1 < len(out) and not out[i + 1].isdigit():
            out[i] = "--fail-on-leak=0"
        elif arg.startswith("--fail-on-leak=-"):
            # click reads a value that starts with '-' as the next option ("No such option")
            raise click.UsageError(f"Invalid value for '--fail-on-leak': {arg[15:]!r} is not a "
                                   "number of bytes (--fail-on-leak=4096)")
    return out


def _number_taken_by_fail_on_leak(args: Sequence[str]) -> list[str] | None:
    """`scan --fail-on-leak 4242`: click gave the PID to --fail-on-leak as its BYTES and then
    missed the PID. The same arguments with --fail-on-leak=0 before the number, or None when
    no bare --fail-on-leak took a number."""
    for i, arg in enumerate(args[:-1]):
        if arg == "--":
            break
        if arg == "--fail-on-leak" and args[i + 1].isdigit():
            return [*args[:i], "--fail-on-leak=0", *args[i + 1:]]
    return None


class _OneLineErrorsGroup(_LazyGroup):
    """Usage errors as one `leaktrace: error: ...` line (click prints usage and 'Error:' on
    several), and no traceback when stdout is a closed pipe (`leaktrace report F | head`)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            args = _bare_fail_on_leak(sys.argv[1:] if args is None else args)
            return super().main(args, prog_name, complete_var, False, **extra)
        _write_names_as_bytes()
        try:
            args = _bare_fail_on_leak(sys.argv[1:] if args is None else args)
            try:
                result = super().main(args, prog_name, complete_var, False, **extra)
            except click.MissingParameter:
                # Raised while parsing, before the command ran: parse again with the
                # number as the missing argument, if --fail-on-leak took it.
                again = _number_taken_by_fail_on_leak(args)
                if again is None:
                    raise
                result = super().main(again, prog_name, complete_var, False, **extra)
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
            sys.exit(INTERRUPTED)
        except BrokenPipeError:
            # The reader went away: stop quietly, and keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(BROKEN_PIPE)
        sys.exit(result if isinstance(result, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click does, but never cutting a description short with '...'."""
        rows = [(name, command.get_short_help_str(limit=200))
                for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

def _write_names_as_bytes() -> None:
    """File and program names are bytes that need not be UTF-8: the readers keep them as
    os.fsdecode makes them (surrogate escapes), and the text output writes those bytes back
    as they were, as ls and valgrind do, instead of failing on them."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "surrogateescape":
            stream.reconfigure(errors="surrogateescape")


@click.group(cls=_OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=f"\b\n{POLICY_TEXT}\n\n\b\n{ENVIRONMENT}")
@click.version_option(package_name="leaktrace", message="leaktrace %(version)s")
def main() -> None:
    """Find native heap leaks in Linux programs.

    Start with `leaktrace run -- PROGRAM ARGS`; `leaktrace COMMAND --help` explains each
    command, with an example.
    """
