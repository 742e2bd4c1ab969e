"""`leaktrace include-dir`: where leaktrace/annotate.h is, for the compiler's -I."""

from __future__ import annotations

import click

from leaktrace.annotations import include_dir
from leaktrace.commands._errors import one_line_errors


@click.command("include-dir")
@one_line_errors
def include_dir_command() -> None:
    """Print the directory that holds leaktrace/annotate.h (the custom-allocator annotations),
    for the compiler: gcc -I"$(leaktrace include-dir)" ..."""
    click.echo(str(include_dir()))
