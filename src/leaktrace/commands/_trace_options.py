"""Options shared by the commands that start a tracing session (`run` and `attach`)."""

from __future__ import annotations

import click

output_option = click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None,
    help="Write the capture to this file (never overwritten). Default: "
         "leaktrace-PROGRAM.PID.lt in the current directory.")

max_depth_option = click.option(
    "--max-depth", type=click.IntRange(1, 1024), default=None,
    help="Most frames kept per backtrace (deeper ones are cut and counted).  [default: 64]")

sample_option = click.option(
    "--sample", "sample_bytes", type=click.IntRange(min=1, max=1 << 40), default=None,
    metavar="BYTES",
    help="Sampling mode, for production: record a block with probability 1-exp(-size/BYTES) "
         "(Poisson sampling by bytes, one sample per BYTES allocated on average) instead of "
         "every block; the report shows estimates with 95% intervals. E.g. 524288.")

interval_option = click.option(
    "--interval", type=click.FloatRange(min=0.01), default=None, metavar="SECONDS",
    help="Seconds between snapshots of per-backtrace totals, for `leaktrace growth` "
         "(fractions allowed; default 1).")
