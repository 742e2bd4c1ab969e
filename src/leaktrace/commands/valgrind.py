"""`leaktrace valgrind -- PROG ARGS`: run valgrind memcheck and show its leaks as a leaktrace
report (the same text and JSON as every other source)."""

from __future__ import annotations

import shutil
import tempfile

import click

from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.commands._report_output import render_options, render_report_as
from leaktrace.commands.report import output_file_option
from leaktrace.render.formats import REPORT_FORMATS, write_output
from leaktrace.runners.valgrind import run_memcheck
from leaktrace.sources.valgrind_xml import REAL_LEAK_KINDS, load


@click.command(
    "valgrind",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--valgrind-arg",
    "valgrind_args",
    multiple=True,
    metavar="ARG",
    help="Pass ARG to valgrind (repeatable), e.g. --valgrind-arg=--suppressions=my.supp.",
)
@click.option(
    "--xml-file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Keep valgrind's XML here (open it again with `leaktrace report FILE`).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(REPORT_FORMATS),
    default="text",
    show_default=True,
    help="text, json, or a picture/profile format (docs/exports.md).",
)
@output_file_option
@render_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@one_line_errors
def valgrind_command(
    valgrind_args: tuple[str, ...],
    xml_file: str | None,
    output_format: str,
    output_file: str | None,
    top: int | None,
    min_bytes: int,
    show_addresses: bool,
    command: tuple[str, ...],
) -> None:
    """Run PROG under valgrind memcheck and report its leaks.

    Exits 1 when memory was definitely, indirectly or possibly lost, else 0.
    """
    with tempfile.TemporaryDirectory(prefix="leaktrace-valgrind-") as workdir:
        xml_path = f"{workdir}/memcheck.xml"
        run = run_memcheck(list(command), list(valgrind_args), xml_path, f"{workdir}/valgrind.log")
        report = load(run.xml_path)
        if xml_file:
            shutil.copyfile(run.xml_path, xml_file)
            report.capture_path = xml_file
        else:
            report.capture_path = None  # the temporary file is gone once we return
    if run.exit_status != 0:
        message = f"{command[0]} exited with status {run.exit_status} under valgrind"
        report.notes.append(message)
        warn(message)

    rendered = render_report_as(
        report, output_format, top=top, min_bytes=min_bytes, show_addresses=show_addresses
    )
    write_output(rendered, output_file)
    leaked = any(record.leak_kind in REAL_LEAK_KINDS for record in report.records)
    raise SystemExit(1 if leaked else 0)
