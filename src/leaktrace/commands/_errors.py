"""Turn expected failures inside a command into one `leaktrace: error: ...` line on stderr and
exit status 2, never a traceback (LeaktraceError is raised by sources and helpers)."""

from __future__ import annotations

import functools
import os
import resource
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from leaktrace.errors import LeaktraceError
from leaktrace.exit_codes import BROKEN_PIPE, INPUT_ERROR, INTERRUPTED

P = ParamSpec("P")
R = TypeVar("R")

ERROR_EXIT_CODE = INPUT_ERROR  # leaktrace/exit_codes.py: the same as click's usage errors


class CommandError(click.ClickException):
    exit_code = ERROR_EXIT_CODE

    def show(self, file: object = None) -> None:
        click.echo(f"leaktrace: error: {self.format_message()}", err=True)


def warn(message: str) -> None:
    click.echo(f"leaktrace: warning: {message}", err=True)


def out_of_memory() -> str:
    """What to say when leaktrace itself ran out of memory, naming the address-space limit
    (`ulimit -v`) when there is one: the usual cause."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return "out of memory"
    return (f"out of memory under the address-space limit RLIMIT_AS (`ulimit -v`) of "
            f"{limit >> 20:,} MiB: raise it")


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a click callback so LeaktraceError, OSError and MemoryError end it with one
    line."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LeaktraceError as error:
            if error.exit_code != ERROR_EXIT_CODE:  # a convention's own code (exit_codes)
                click.echo(f"leaktrace: error: {error}", err=True)
                sys.exit(error.exit_code)
            raise CommandError(str(error)) from None
        except BrokenPipeError:
            # The reader of stdout went away (`| head`): stop quietly, as a program killed by
            # SIGPIPE would, and keep Python from complaining about the final flush.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(BROKEN_PIPE)
        except OSError as error:
            # A file that vanished or cannot be read: the OS message is what the user needs.
            where = f"{error.filename}: " if error.filename else ""
            raise CommandError(f"{where}{error.strerror or error}") from None
        except KeyboardInterrupt:
            click.echo("leaktrace: interrupted", err=True)
            sys.exit(INTERRUPTED)
        except MemoryError:
            raise CommandError(out_of_memory()) from None

    return wrapper
