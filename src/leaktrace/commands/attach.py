"""`leaktrace attach PID`: start collecting in a running process, wait (--duration, Ctrl-C,
SIGTERM), detach and print the report of what was allocated meanwhile and is still live."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
import time
from typing import Any, NoReturn

import click

from leaktrace.attach.injector import Injection, Log
from leaktrace.attach.preflight import check_attachable, describe
from leaktrace.attach.process_info import MemoryMap, is_go_executable
from leaktrace.attach.session import (
    AttachSettings,
    Detached,
    NoticeFile,
    OwnSession,
    SessionEnded,
    attach,
    check_capture_dir,
    check_control_dir,
    collecting_status,
    control_dir_for,
    detach,
    set_interval,
)
from leaktrace.attach.signal_watch import SignalWatch
from leaktrace.commands._attach_report import (
    ReportChoices,
    check_suppressions,
    clock_text,
    print_capture_report,
    report_options,
    stop_printing_on_ctrl_c,
    window_text,
)
from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.commands._trace_options import (
    interval_option,
    max_depth_option,
    output_option,
    sample_option,
)
from leaktrace.control.client import (
    ControlError,
    ProcessGone,
    process_alive,
    remove_stale_socket,
    shim_preloaded,
    socket_path,
)
from leaktrace.errors import LeaktraceError
from leaktrace.invocation import leaktrace_command
from leaktrace.launcher.notifications import detached_sessions, read_notifications
from leaktrace.shim_library import find_shim_library

# Each ends the collection window (SIGHUP: the terminal went away). Only noted from the
# start, so one arriving during the injection is acted on once the target is whole again.
# End the collection window cleanly (detach, report); held back during the injection.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT})
EXIT_CHECK_INTERVAL = 0.2  # how often the wait looks whether the target has exited


@click.command("attach")
@click.argument("pid", type=click.IntRange(min=1))
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Collect for this long, then detach. Default: until Ctrl-C or SIGTERM.")
@output_option
@max_depth_option
@interval_option
@sample_option
@click.option("-v", "--verbose", is_flag=True,
              help="Say how the injection went, step by step, with the time of each.")
@report_options
@one_line_errors
def attach_command(pid: int, duration: float | None, output: str | None,
                   max_depth: int | None, interval: float | None,
                   sample_bytes: int | None, verbose: bool,
                   **options: Any) -> None:
    """Attach to the running process PID and collect its allocations until --duration ends,
    Ctrl-C or SIGTERM; then detach and report the leaks of that window.

    The process keeps running throughout. If leaktrace itself is killed, the process keeps
    collecting: `leaktrace detach PID` then ends the session and prints the report.
    """
    started = time.monotonic()
    choices = ReportChoices.take(options)
    check_suppressions(choices)
    shim = str(find_shim_library())
    directory = control_dir_for(pid)
    config_dir = tempfile.gettempdir()
    capture_dir = os.getcwd()
    if output is not None:
        output = os.path.abspath(output)
        if os.path.lexists(output):
            raise LeaktraceError(f"{output} already exists: leaktrace never overwrites a "
                                 "capture; remove it or choose another -o")
    memory = check_attachable(pid, shim, config_dir)
    check_control_dir(directory, pid)
    if output is not None:
        check_capture_dir(os.path.dirname(output), pid, "the -o directory")
    else:
        check_capture_dir(capture_dir, pid, "the current directory (where the capture goes)")
    status = collecting_status(pid, directory)
    if status is not None and status.get("collecting"):
        if shim_preloaded(pid):
            raise LeaktraceError(f"{describe(pid)} already runs under leaktrace (started with "
                                 f"leaktrace run): use `{leaktrace_command()} status {pid}` and "
                                 f"`{leaktrace_command()} report --pid {pid}` instead")
        raise LeaktraceError(f"{describe(pid)} is already traced by leaktrace (it answers on "
                             f"{socket_path(pid, directory)}): "
                             f"`{leaktrace_command()} detach {pid}` ends an attach session")

    def log(message: str) -> None:
        if verbose:
            click.echo(f"leaktrace: {message}", err=True)

    notices = NoticeFile(pid, config_dir)
    settings = AttachSettings(control_dir=directory, capture_dir=capture_dir, output=output,
                              notify=notices.path, max_depth=max_depth, interval=interval,
                              sample_bytes=sample_bytes, session=secrets.token_hex(8))
    # Known now: once the process is gone, /proc no longer shows its executable.
    go_program = is_go_executable(f"/proc/{pid}/exe")
    try:
        with SignalWatch(STOP_SIGNALS) as watch:
            ended = _collect(pid, settings, shim, memory, config_dir, duration,
                             started, watch, log, go_program, choices.scan)
            click.echo("leaktrace: collected "
                       f"{window_text(ended.attached_at, ended.detached_at)}", err=True)
            stop_printing_on_ctrl_c(ended.capture)
    finally:
        notices.close()
    # SIGTERM and the others act normally again: rendering a huge report may be stopped.
    raise SystemExit(print_capture_report(ended.capture, choices))


def _collect(pid: int, settings: AttachSettings, shim: str, memory: MemoryMap,
             config_dir: str, duration: float | None, started: float, watch: SignalWatch,
             log: Log, go_program: bool, scan: bool) -> Detached:
    """Inject, wait for the end of the window, detach; the stop signals only take note."""
    assert settings.session is not None and settings.notify is not None
    notices = settings.notify
    injection = attach(pid, shim, settings, memory, config_dir, log)
    attached_at = time.time()
    own = OwnSession(pid, settings.control_dir, settings.session, notices)
    try:
        set_interval(pid, settings)
    except LeaktraceError as e:  # collecting anyway: not worth abandoning the window
        warn(f"--interval not applied: {e}")
    _log_injection(injection, time.monotonic() - started, log)
    for tid, call in injection.interrupted:
        warn(f"thread {tid} was blocked in {call}(), which Linux does not restart after a "
             "ptrace stop: it returned EINTR to the program (as under gdb or strace)")
    until = f"for {duration:g} s" if duration is not None else "until Ctrl-C or SIGTERM"
    click.echo(f"leaktrace: attached to {describe(pid)} at {clock_text(attached_at)}; "
               f"collecting {until}", err=True)
    why = _wait(pid, duration, watch, own)
    if why is None:
        return _exit_capture(pid, notices, settings.session, attached_at,
                             settings.control_dir, go_program)
    if why == ENDED_BY_DETACH:
        _ended_by_detach(pid)
    log(f"detaching ({why})")
    try:
        detached = detach(pid, settings.control_dir, settings.session, scan=scan)
    except SessionEnded:
        _ended_by_detach(pid)
    except ProcessGone:
        return _exit_capture(pid, notices, settings.session, attached_at,
                             settings.control_dir, go_program)
    except ControlError as e:
        raise LeaktraceError(f"{e}; the process may still be collecting: try "
                             f"`{leaktrace_command()} detach {pid}`") from None
    return Detached(detached.capture, attached_at, detached.detached_at)


def _ended_by_detach(pid: int) -> NoReturn:
    click.echo(f"leaktrace: the session was ended by `{leaktrace_command()} detach {pid}`, "
               "which printed its report", err=True)
    raise SystemExit(0)


def _log_injection(injection: Injection, latency: float, log: Log) -> None:
    log(f"injected through thread {injection.thread}, shim {injection.shim_path}")
    for step, seconds in injection.steps:
        log(f"  {step}: {seconds * 1000:.1f} ms")
    since_start = _seconds_since_process_start()
    whole = f", {since_start * 1000:.0f} ms since leaktrace started" if since_start else ""
    log(f"attach latency: {latency * 1000:.0f} ms from the start of the attach command to "
        f"collecting{whole} (Python start-up included)")


def _seconds_since_process_start() -> float | None:
    """From /proc/self/stat's start time (clock ticks since boot, on CLOCK_BOOTTIME)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5)
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError):
        return None


ENDED_BY_DETACH = "ended by detach"


def _wait(pid: int, duration: float | None, watch: SignalWatch, own: OwnSession) -> str | None:
    """Until the duration ends or a stop signal comes, also during the injection (returns
    which), a detach from elsewhere ends the session (ENDED_BY_DETACH), or the process exits
    (returns None)."""
    deadline = None if duration is None else time.monotonic() + duration
    while True:
        if watch.received:
            return signal.Signals(watch.received[0]).name
        if not process_alive(pid):  # a main thread ended while others run: still running
            return None
        if own.ended_by_detach():
            return ENDED_BY_DETACH
        timeout = EXIT_CHECK_INTERVAL
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                return "the duration ended"
        watch.wait(timeout)


def _exit_capture(pid: int, notify: str, session: str, attached_at: float,
                  control_dir: str, go_program: bool) -> Detached:
    """The process exited while attached: the shim wrote its capture at exit, as under
    `leaktrace run`, and announced it. (Not a Go program: its runtime ends the process with a
    raw exit system call, which the shim redirects only when it is preloaded.)"""
    ended_at = time.time()
    if session in detached_sessions(notify, pid):  # just before it exited
        _ended_by_detach(pid)
    notices, failures = read_notifications(notify)
    captures = [n.path for n in notices if n.pid == pid and os.path.isfile(n.path)]
    failed = [f for f in failures if f.pid == pid]
    remove_stale_socket(pid, directory=control_dir)  # killed: it could not remove it
    if not captures and failed:
        raise LeaktraceError(f"process {pid} ended during the collection window and could not "
                             f"write its capture {failed[-1].path}: {failed[-1].reason}")
    if not captures and go_program:
        raise LeaktraceError(f"process {pid} ended during the collection window without "
                             "writing a capture: a Go program ends with a raw exit system call, "
                             "which leaktrace catches only under `leaktrace run`; take "
                             f"`{leaktrace_command()} report --pid {pid}` or "
                             f"`{leaktrace_command()} detach {pid}` before it ends")
    if not captures:
        raise LeaktraceError(f"process {pid} ended during the collection window without "
                             "writing a capture (killed by a signal it could not catch?)")
    warn(f"process {pid} exited during the collection window; this is its capture at exit")
    return Detached(captures[-1], attached_at, ended_at)

