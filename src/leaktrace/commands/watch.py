"""`leaktrace watch PID | -- COMMAND`: sample a process's memory and say whether it grows.
The first stop of a leak hunt: is it leaking at all?"""

from __future__ import annotations

import subprocess
import time

import click

from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.errors import LeaktraceError
from leaktrace.exit_codes import LEAKS_FOUND
from leaktrace.launcher import inherited_fds
from leaktrace.procmem.live_chart import LiveChart
from leaktrace.procmem.plot import write_csv, write_plot
from leaktrace.procmem.sampler import METRICS, Sample, take_sample
from leaktrace.procmem.smaps import process_exists
from leaktrace.procmem.snapshot import command_line, display_command
from leaktrace.procmem.trend import GROWING, fit_trend
from leaktrace.procmem.watch_report import render_watch_json, render_watch_text

_TERMINATE_GRACE_SECONDS = 5.0


# No ignore_unknown_options: COMMAND comes after "--", so a mistyped option is an error.
@click.command("watch")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between samples (fractions allowed).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until the process exits or Ctrl-C).",
)
@click.option(
    "--metric",
    type=click.Choice(list(METRICS)),
    default="rss",
    show_default=True,
    help="The measure the trend and verdict use.",
)
@click.option(
    "--min-growth",
    type=click.IntRange(min=0),
    default=1 << 20,
    show_default=True,
    help="Bytes the fitted line must rise over the watch to count as growing.",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Save samples as CSV.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Save a plot: .html or .svg (built in) or .png (needs matplotlib).",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text for people; json for tools: the verdict, slope, its interval and the "
                   "first and last samples (docs/companion-tools.md).")
@click.argument("target", nargs=-1, required=True, type=click.UNPROCESSED)
@one_line_errors
def watch_command(
    interval: float,
    duration: float | None,
    metric: str,
    min_growth: int,
    csv_path: str | None,
    plot_path: str | None,
    output_format: str,
    target: tuple[str, ...],
) -> None:
    """Sample RSS, Pss, private dirty memory and heap size of PID (or of COMMAND, started
    here) and fit a trend. Exits 99 (leaks found) when the process is growing, else 0."""
    child: subprocess.Popen[bytes] | None = None
    if len(target) == 1 and target[0].isdigit():
        pid = int(target[0])
        if not process_exists(pid):
            raise LeaktraceError(f"no process with PID {pid}")
    else:
        child = _start(list(target))
        pid = child.pid
    try:
        # A child just started may not have exec'd yet: name it by what we ran.
        command = display_command(list(target)) if child is not None else command_line(pid)
        samples = _sample(pid, child, interval, duration, metric, min_growth, command)
    finally:
        if child is not None:
            _stop(child)

    trend = fit_trend(
        [s.seconds for s in samples],
        [s.value(metric) for s in samples],
        min_growth_bytes=min_growth,
    )
    if csv_path:
        write_csv(csv_path, samples)
    if plot_path and samples:
        write_plot(plot_path, samples, trend, metric, f"leaktrace watch: pid {pid} ({command})")
    render = render_watch_json if output_format == "json" else render_watch_text
    click.echo(render(pid, command, samples, interval, trend, metric), nl=False)
    if trend.verdict == GROWING:
        raise SystemExit(LEAKS_FOUND)


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                pass_fds=inherited_fds.still_open())
    except FileNotFoundError:
        raise LeaktraceError(f"{command[0]}: command not found") from None
    except PermissionError:
        raise LeaktraceError(f"{command[0]}: permission denied") from None


def _stop(child: subprocess.Popen[bytes]) -> None:
    """End the command we started, if it still runs."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(_TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _sample(
    pid: int,
    child: subprocess.Popen[bytes] | None,
    interval: float,
    duration: float | None,
    metric: str,
    min_growth: int,
    command: str,
) -> list[Sample]:
    samples: list[Sample] = []
    started = time.monotonic()
    with LiveChart(f"leaktrace watch: pid {pid} ({command})", metric) as chart:
        try:
            tick = 0
            while True:
                now = time.monotonic() - started
                if duration is not None and now > duration + 1e-9:
                    break
                if (child is not None and child.poll() is not None) or not process_exists(pid):
                    warn(f"process {pid} exited after {now:.1f} s")
                    break
                try:
                    samples.append(take_sample(pid, now))
                except LeaktraceError:
                    if process_exists(pid) and (child is None or child.poll() is None):
                        raise  # it runs: the read failed (another user's process)
                    warn(f"process {pid} exited after {now:.1f} s")  # between check and read
                    break
                if chart.enabled:
                    chart.update(
                        samples,
                        fit_trend(
                            [s.seconds for s in samples],
                            [s.value(metric) for s in samples],
                            min_growth_bytes=min_growth,
                        ),
                    )
                # Sample on a fixed schedule, whatever time a sample takes.
                tick += 1
                time.sleep(max(0.0, started + tick * interval - time.monotonic()))
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the watch; the samples so far still give a verdict
    return samples
