"""The `leaktrace` command: a click group; each subcommand lives in leaktrace/commands/."""

from __future__ import annotations

import click

from leaktrace.commands.mtrace import mtrace_command
from leaktrace.commands.valgrind import valgrind_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leaktrace", message="leaktrace %(version)s")
def main() -> None:
    """Find native heap leaks in Linux programs."""


main.add_command(mtrace_command)
main.add_command(valgrind_command)
