"""`leaktrace mem PID`: where a process's memory is, from /proc (no instrumentation)."""

from __future__ import annotations

import os

import click

from leaktrace.commands._errors import one_line_errors
from leaktrace.errors import LeaktraceError
from leaktrace.procmem.mem_render import render_memory_json, render_memory_text
from leaktrace.procmem.smaps import process_exists
from leaktrace.procmem.snapshot import read_process_memory


@click.command("mem")
@click.argument("pid", type=click.IntRange(min=1))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text for people; json for tools: totals, by_kind and every mapping, in "
                   "bytes (docs/companion-tools.md).")
@click.option(
    "--top", type=click.IntRange(min=0), default=None, help="Show only the N largest mappings."
)
@one_line_errors
def mem_command(pid: int, output_format: str, top: int | None) -> None:
    """Show PID's memory: totals (Rss, Pss, private/shared, swap), a grouping by kind (heap,
    stack, anon, file, vdso) and every mapping, largest first."""
    if not process_exists(pid):
        if os.path.exists(f"/proc/{pid}"):
            raise LeaktraceError(f"process {pid} has exited (a zombie its parent has not reaped "
                                 "yet): it has no memory left to show")
        raise LeaktraceError(f"no process with PID {pid}")
    memory = read_process_memory(pid)
    render = render_memory_json if output_format == "json" else render_memory_text
    click.echo(render(memory, top), nl=False)
