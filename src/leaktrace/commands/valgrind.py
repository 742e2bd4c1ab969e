"""`leaktrace valgrind -- PROG ARGS`: run valgrind memcheck and show its leaks as a leaktrace
report (the same text and JSON, LEAK SUMMARY and options as every other source)."""

from __future__ import annotations

import shutil
import sys
import tempfile

import click

from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.commands._leak_gate import LeakGate, end_gated, leak_gate_options
from leaktrace.commands._leak_kind_options import valgrind_leak_kind_options
from leaktrace.commands._report_output import (
    for_stdout,
    program_report_file_option,
    render_options,
    render_report_as,
    report_format_option,
)
from leaktrace.errors import LeaktraceError
from leaktrace.launcher.supervise import end_like, signal_description
from leaktrace.launcher.unread_output import drop_when_unread
from leaktrace.render.formats import BINARY_FORMATS, refuse_to_overwrite_a_capture, write_output
from leaktrace.runners.valgrind import run_memcheck
from leaktrace.sources.valgrind_xml import load
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions


@click.command(
    "valgrind",
    # No ignore_unknown_options: as for run, a mistyped option before PROGRAM is an error.
    context_settings={"allow_interspersed_args": False},
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
@report_format_option
@program_report_file_option
@render_options
@valgrind_leak_kind_options
@leak_gate_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED,
                metavar="[--] PROGRAM [ARGS]...")
@one_line_errors
def valgrind_command(
    valgrind_args: tuple[str, ...], xml_file: str | None, output_format: str,
    output_file: str | None, top: int | None, min_bytes: int, show_addresses: bool,
    show_kinds: frozenset[str], suppression_files: tuple[str, ...], gen_suppressions: bool,
    gate: LeakGate, command: tuple[str, ...],
) -> None:
    """Run PROGRAM under valgrind memcheck and report its leaks as `run` does.

    valgrind follows PROGRAM through exec (a script or wrapper that execs the real program),
    as `run` does, with --trace-children=yes: its children run under valgrind too
    (--valgrind-arg=--trace-children=no to leave them). The LEAK SUMMARY is valgrind's own.

    Ends the way the program ended: with its exit status, or killed by the same signal
    (the report is printed first; a shell shows 128+N), or, when the program was not killed
    by a signal, with --error-exitcode when valgrind found memory errors leaktrace reports
    (invalid frees, leaks), or with --leak-exit-code when --fail-on-leak is exceeded. The
    report goes to stderr, as valgrind's, unless -o names a file ('-' for stdout): the
    program's stdout stays its own.
    """
    if output_format in BINARY_FORMATS | {"html"} and output_file is None:
        raise LeaktraceError(f"--format {output_format} needs -o FILE (the report goes to "
                             "stderr otherwise, between valgrind's and the program's messages)")
    # valgrind applied its own default suppressions: its verdicts are shown as it gave them.
    suppressions = load_suppressions(suppression_files, with_defaults=False)
    with tempfile.TemporaryDirectory(prefix="leaktrace-valgrind-") as workdir:
        run = run_memcheck(list(command), list(valgrind_args), workdir)
        drop_when_unread()
        report = load(run.xml_path)
        if xml_file:
            refuse_to_overwrite_a_capture(xml_file)
            shutil.copyfile(run.xml_path, xml_file)
            report.capture_path = xml_file
        else:
            report.capture_path = None  # the temporary file is gone once we return
    died = signal_description(run.returncode)
    if died:
        warn(f"{command[0]} was {died}")
    apply_suppressions(report, suppressions)
    rendered = render_report_as(report, output_format, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                gen_suppressions=gen_suppressions)
    if output_file in (None, "-") and isinstance(rendered, str):
        rendered = for_stdout(rendered, output_format, sys.stdout if output_file else sys.stderr)
    write_output(rendered, output_file, stream="stdout" if output_file == "-" else "stderr")
    code = gate.exit_code([report])
    if code is not None:
        end_gated(run.returncode, gate, code)
    end_like(run.returncode)
