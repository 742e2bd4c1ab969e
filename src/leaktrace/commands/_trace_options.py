"""Options shared by the commands that start a tracing session (`run` and `attach`)."""

from __future__ import annotations

import click

output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None,
    help="Write the capture to this file (never overwritten). Default: "
         "leaktrace-PROGRAM.PID.lt in the current directory.")

max_depth_option = click.option(
    "--max-depth", type=click.IntRange(1, 1024), default=None,
    help="Most frames kept per backtrace (the shim's default otherwise).")

interval_option = click.option(
    "--interval", type=click.FloatRange(min=0.01), default=None, metavar="SECONDS",
    help="Seconds between snapshots of per-backtrace totals, for `leaktrace growth` "
         "(fractions allowed; default 1).")
