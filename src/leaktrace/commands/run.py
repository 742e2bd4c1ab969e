"""`leaktrace run [OPTIONS] -- PROGRAM [ARGS...]`: run a program under the shim, then print
its leak report (on stderr, like valgrind, so the program's stdout stays its own)."""

from __future__ import annotations

import errno
import os
import resource
import shlex
import signal
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn

import click

from leaktrace.commands._errors import one_line_errors, warn
from leaktrace.commands._gc import without_cycle_collection
from leaktrace.commands._html_timeline import html_timeline
from leaktrace.commands._leak_gate import LeakGate, end_gated, leak_gate_options
from leaktrace.commands._leak_kind_options import leak_kind_options
from leaktrace.commands._report_output import (
    render_options,
    render_report_as,
    report_format_option,
    stream_report_as,
)
from leaktrace.commands._trace_options import (
    interval_option,
    max_depth_option,
    output_option,
    sample_option,
)
from leaktrace.control.client import remove_stale_socket
from leaktrace.errors import LeaktraceError
from leaktrace.exit_codes import USAGE_ERROR
from leaktrace.invocation import leaktrace_command, report_hint
from leaktrace.kernel_filesystems import kernel_filesystem
from leaktrace.launcher.environment import (
    as_if_run_directly,
    heuristics_error,
    launch_environment,
    start_mode,
)
from leaktrace.launcher.notifications import (
    CaptureFailure,
    CaptureNotice,
    exec_captures,
    find_capture,
    last_exec_targets,
    numbered_captures,
    remove_empty_captures,
)
from leaktrace.launcher.outliving_children import GRACE_SECONDS, wait_for_children
from leaktrace.launcher.program_checks import check_traceable, resolve_program, why_untraceable
from leaktrace.launcher.supervise import (
    end_like,
    run_supervised,
    signal_description,
)
from leaktrace.launcher.unread_output import drop_when_unread
from leaktrace.nameless_files import NamelessFile
from leaktrace.render.colors import colorize_report, use_color
from leaktrace.render.formats import (
    BINARY_FORMATS,
    refuse_to_overwrite_a_capture,
    write_output,
)
from leaktrace.shim_library import find_shim_library
from leaktrace.suppressions import Suppression, load_suppressions

if TYPE_CHECKING:
    from leaktrace.commands._capture_report import CaptureReport
    from leaktrace.commands._children import ChildLeaks
    from leaktrace.model import ChildProcess, Report


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED,
                metavar="[--] PROGRAM [ARGS]...")
@output_option
@max_depth_option
@click.option("--follow-children", is_flag=True,
              help="Also trace child processes; each writes its own capture.")
@click.option("--skip-children", metavar="PATTERNS", default=None,
              help="With --follow-children: do not trace the children whose program matches "
                   "one of these comma-separated patterns ('*' and '?'; the name it was run "
                   "by or its executable, the last part unless a pattern has a '/'), e.g. "
                   "'cc1,as,ld,collect2,gcc*', as valgrind's trace-children-skip option does. "
                   "The programs they run are still traced.")
@click.option("--report-file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write the report to this file ('-' for stdout) instead of stderr.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as a self-contained HTML page to this file.")
@interval_option
@sample_option
@click.option("--mtrace-log", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a glibc MALLOC_TRACE log with each allocation's backtrace to "
                   "FILE (never overwritten), for glibc's mtrace script or `leaktrace mtrace` "
                   "(docs/mtrace-log.md). Not with --sample.")
@click.option("--start", "start", type=click.Choice(["at-load", "on-mtrace"]), default=None,
              help="Record from the start (at-load, the default; also MEMLEAK_CONFIG="
                   "mtraceinit) or from the program's first mtrace() call (on-mtrace).")
@report_format_option
@render_options
@leak_kind_options
@leak_gate_options
@one_line_errors
@without_cycle_collection
def run_command(command: tuple[str, ...], output: str | None, max_depth: int | None,
                follow_children: bool, skip_children: str | None,
                report_file: str | None, html_file: str | None,
                interval: float | None, sample_bytes: int | None, mtrace_log: str | None,
                start: str | None, output_format: str,
                top: int | None, min_bytes: int, show_addresses: bool,
                show_kinds: frozenset[str], suppression_files: tuple[str, ...],
                no_default_suppressions: bool, gen_suppressions: bool,
                gate: LeakGate) -> None:
    """Run PROGRAM under the leaktrace shim and report the memory still live when it ends.

    Ends the way the program ended: with its exit status, or killed by the same signal
    (the report is printed first; a shell shows 128+N), or, when the program was not killed
    by a signal, with --error-exitcode when the run had memory errors, or with
    --leak-exit-code when --fail-on-leak is exceeded.
    """
    if output_format in BINARY_FORMATS | {"html"} and report_file is None:
        raise LeaktraceError(f"--format {output_format} needs --report-file FILE (the report "
                             "goes to stderr otherwise, between leaktrace's own messages)")
    if skip_children is not None and not follow_children:
        raise click.UsageError("--skip-children leaves out some of the children "
                               "--follow-children traces: give --follow-children too")
    if mtrace_log is not None and sample_bytes is not None:
        # The log needs every allocation (glibc's script pairs each free with one); sampling
        # records a few, and the frees of the others would be frees of unknown blocks.
        raise click.UsageError("--mtrace-log logs every allocation, --sample only some: "
                               "give one of them")
    bad_heuristics = heuristics_error(os.environ.get("LEAKTRACE_HEURISTICS"))
    if bad_heuristics:
        raise LeaktraceError(bad_heuristics)
    shim = str(find_shim_library())
    # Read before the run: a bad suppression file should not cost a whole run.
    suppressions = load_suppressions(suppression_files, with_defaults=not no_default_suppressions)
    program = resolve_program(command[0])
    check_traceable(program, shim)
    # LEAKTRACE_DIR, as the shim alone reads it; else the current directory
    named_dir = os.environ.get("LEAKTRACE_DIR")
    capture_dir = os.path.abspath(named_dir) if named_dir else os.getcwd()
    if mtrace_log is not None:
        mtrace_log = os.path.abspath(mtrace_log)
        _check_new_file(mtrace_log, "--mtrace-log")
    for path, option in ((report_file, "--report-file"), (html_file, "--html")):
        if path is not None:
            _check_report_file(path, option)
    if output is not None:
        output = os.path.abspath(output)
        _check_output_file(output)
        capture_dir = os.path.dirname(output)  # children's captures go beside it
    else:
        _check_writable_dir(capture_dir, "LEAKTRACE_DIR" if named_dir else
                            "the current directory (where captures are written)")

    start, start_warning = start_mode(start, os.environ)
    if start_warning:
        warn(start_warning)
    with NamelessFile() as notify:  # nothing left in /tmp, even if leaktrace is killed
        env = launch_environment(os.environ, shim=shim, capture_dir=capture_dir,
                                 notify_path=notify.path, output=output, max_depth=max_depth,
                                 follow_children=follow_children,
                                 skip_children=skip_children, interval=interval,
                                 start=start, sample_bytes=sample_bytes)
        as_if_run_directly(env, program)
        if mtrace_log is not None:
            env["LEAKTRACE_MTRACE_LOG"] = mtrace_log
        else:
            env.pop("LEAKTRACE_MTRACE_LOG", None)  # an inherited one is not this run's
        returncode, pid = run_supervised(list(command), program, env,
                                         while_running=_import_report_modules)
        # A followed child may end a moment after the program (none traced: no wait).
        at_end = wait_for_children(notify.path, pid)
        notices, failures, still_running = at_end.notices, at_end.failures, at_end.still_running
        vanished = at_end.vanished
        exec_targets = last_exec_targets(notify.path)
    drop_when_unread()
    remove_stale_socket(pid, env)

    capture = find_capture(pid, notices, output=output, capture_dir=capture_dir)
    remove_empty_captures(pid, output=output, capture_dir=capture_dir)
    died = signal_description(returncode)
    if died:
        warn(f"{command[0]} was {died}")
    try:
        _import_report_modules_now()
    except LeaktraceError as e:
        kept = f"; the capture is kept: {capture}" if capture else ""
        warn(f"no report: {e}{kept}")
        _end_unchecked(returncode)

    def render(report: Report, fmt: str) -> str | bytes:
        return render_report_as(report, fmt, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                gen_suppressions=gen_suppressions)

    # Images the process replaced by exec without forking: each has a report of its own.
    inline = output_format == "text" and report_file is None
    def shows_records(report: Report) -> bool:
        from leaktrace.render.options import RenderOptions, shown_records
        return bool(shown_records(report, RenderOptions(top=top, min_bytes=min_bytes,
                                                        leak_kinds=show_kinds)))

    earlier = _report_exec_images(exec_captures(pid, notices), suppressions, render,
                                  show_addresses, inline=inline, shows_records=shows_records)
    if capture is None:
        last = " by the image it exec'd last" if earlier else ""
        why = _untraceable(pid, exec_targets, shim) or _why_no_capture(
            returncode, [f for f in failures if f.pid == pid])
        warn(f"no capture was written for {command[0]} (pid {pid}){last}: {why}")
        code = gate.exit_code(earlier)
        if code is not None:
            end_gated(returncode, gate, code)
        _end_unchecked(returncode)
    # An HTML page draws the growth timeline of a capture with snapshots (run --interval):
    # the same page `leaktrace report CAPTURE --format html` makes.
    wants_html = html_file is not None or output_format == "html"
    loaded: CaptureReport | None = None
    try:
        if wants_html:
            loaded = _loaded_capture(capture, suppressions, show_addresses)
            report = loaded.report
        else:
            report = _suppressed_report(capture, suppressions, show_addresses)
    except LeaktraceError as e:
        warn(str(e))
        _end_unchecked(returncode)
    if earlier:
        click.echo(f"leaktrace: the last image ({report.program}), at its end:", err=True)
    gated = gate.fail_on_leak is not None or gate.error_exitcode is not None
    counted = gate.fail_on_kinds if gated else frozenset()
    followed = _follow_children(pid, notices, suppressions, counted) if follow_children else []
    if follow_children:
        report.children = _child_processes(followed)
    timeline = html_timeline(loaded)
    rendered = stream_report_as(report, output_format, top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                gen_suppressions=gen_suppressions, timeline=timeline)
    if output_format == "text" and report_file is None and use_color(sys.stderr):
        assert not isinstance(rendered, bytes)
        rendered = colorize_report("".join(rendered))
    _emit_report(rendered, report_file)
    if html_file is not None:
        page = render_report_as(report, "html", top=top, min_bytes=min_bytes,
                                show_addresses=show_addresses, leak_kinds=show_kinds,
                                timeline=timeline)
        _emit_report(page, html_file)
        click.echo(f"leaktrace: HTML report written to {html_file}", err=True)
    click.echo(f"leaktrace: capture saved to {capture}", err=True)
    click.echo(f"leaktrace: to see it again: {report_hint(capture)}", err=True)
    _list_numbered_captures(pid, notices)
    if mtrace_log is not None and os.path.exists(mtrace_log):
        click.echo(f"leaktrace: mtrace log written to {mtrace_log}: "
                   f"{leaktrace_command()} mtrace {shlex.quote(mtrace_log)}", err=True)
    children = _summarize_children(followed)
    _name_children_without_capture(pid, failures, {
        child: _untraceable(child, exec_targets, shim) for child in vanished})
    _name_children_still_running(still_running, capture_dir)
    code = gate.exit_code([report, *earlier, *children])
    if code is not None:
        end_gated(returncode, gate, code)
    end_like(returncode)


def _import_report_modules() -> None:
    """Imports what the report needs (numpy, the analysis, the symbolizer: 0.1-0.2 s) while
    the program runs, so that its report follows its end sooner; never before it starts. Not
    under an address-space limit (`ulimit -v`): there OpenBLAS, which numpy loads, may fail to
    map its buffers and end the whole launcher (and with it the program) or spin on its
    retries; after the program's end only the report is at stake."""
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        _import_report_modules_now()


def _import_report_modules_now() -> None:
    from leaktrace.numpy_pages import one_blas_thread, room_for_numpy

    room_for_numpy()
    with one_blas_thread():
        import leaktrace.analyze.build_report
        import leaktrace.commands._capture_report
        import leaktrace.suppressions.apply  # noqa: F401


def _suppressed_report(capture: str, suppressions: list[Suppression],
                       show_addresses: bool) -> Report:
    """A capture's report with the suppressions applied. The analysis modules (numpy, the
    symbolizer) are imported here, after the program has ended: they never delay its start."""
    from leaktrace.numpy_pages import one_blas_thread

    with one_blas_thread():
        from leaktrace.analyze.build_report import load_report
    from leaktrace.suppressions.apply import apply_suppressions

    report = load_report(capture, with_addresses=show_addresses)
    apply_suppressions(report, suppressions)
    return report


def _loaded_capture(capture: str, suppressions: list[Suppression],
                    show_addresses: bool) -> CaptureReport:
    """As _suppressed_report, with the capture's series for the HTML page's growth timeline."""
    from leaktrace.commands._capture_report import load_capture_report
    from leaktrace.suppressions.apply import apply_suppressions

    loaded = load_capture_report(capture, with_addresses=show_addresses, compare=False)
    apply_suppressions(loaded.report, suppressions)
    return loaded


def _report_exec_images(paths: list[str], suppressions: list[Suppression],
                        render: Callable[[Report, str], str | bytes], show_addresses: bool, *,
                        inline: bool, shows_records: Callable[[Report], bool]) -> list[Report]:
    """The report of each image the program replaced by exec: in full before the last
    image's when the report is text on stderr and has a loss record to show, else (no
    record of the kinds shown: a wrapper script's shell, pyenv's; another format,
    --report-file, which hold the last image's report alone) one line each with its totals
    and how to see it."""
    reports = []
    for number, path in enumerate(paths, start=1):
        try:
            report = _suppressed_report(path, suppressions, show_addresses)
        except LeaktraceError as e:
            warn(str(e))
            continue
        reports.append(report)
        what = f"image {number} ({report.program}), replaced by exec"
        if inline and shows_records(report):
            click.echo(f"leaktrace: {what}:", err=True)
            rendered = render(report, "text")
            _emit_report(colorize_report(str(rendered)) if use_color(sys.stderr)
                         else rendered, None)
            click.echo(f"leaktrace: capture saved to {path}", err=True)
            continue
        leaks = report.summary.leaks
        live = (f"{report.summary.live_bytes:,} bytes live in "
                f"{report.summary.live_blocks:,} blocks")
        if inline:
            totals = f"no loss record of the kinds shown ({live})"
        elif leaks:
            totals = (f"definitely lost {leaks.definitely_lost.bytes:,} bytes in "
                      f"{leaks.definitely_lost.blocks:,} blocks")
        else:
            totals = live
        click.echo(f"leaktrace: {what}: {totals}; {report_hint(path)}", err=True)
    return reports


def _follow_children(pid: int, notices: list[CaptureNotice], suppressions: list[Suppression],
                     counted_kinds: frozenset[str]
                     ) -> list[tuple[CaptureNotice, ChildLeaks | str]]:
    """The leaks of each traced child (--follow-children), suppressions applied as in the
    child's own report, or why its capture could not be read."""
    from leaktrace.capture_names import parse_capture_name
    from leaktrace.commands._children import ChildReports, child_leaks

    build = ChildReports(suppressions)
    followed: list[tuple[CaptureNotice, ChildLeaks | str]] = []
    for notice in notices:
        if notice.pid == pid or parse_capture_name(notice.path).number is not None:
            continue
        try:
            followed.append((notice, child_leaks(notice.path, counted_kinds, build)))
        except LeaktraceError as e:
            followed.append((notice, str(e)))
    return followed


def _child_processes(followed: list[tuple[CaptureNotice, ChildLeaks | str]]
                     ) -> list[ChildProcess]:
    """For the report (JSON `children`): a CI job that fails on a child's leak has them in
    its artifact."""
    from leaktrace.model import ChildProcess

    return [ChildProcess(notice.pid, os.path.abspath(notice.path),
                         None if isinstance(leaks, str) else dict(leaks.totals),
                         leaks if isinstance(leaks, str) else None,
                         0 if isinstance(leaks, str) else leaks.invalid_frees)
            for notice, leaks in followed]


def _summarize_children(followed: list[tuple[CaptureNotice, ChildLeaks | str]]) -> list[Report]:
    """One line per traced child with its leak summary, and the total; returns the reports
    built for the children with blocks of a shown or counted kind (for --fail-on-leak)."""
    from leaktrace.commands._children import LOST_KINDS

    if not followed:
        return []
    click.echo(f"leaktrace: {len(followed)} child process(es) traced:", err=True)
    total = {kind: [0, 0] for kind in LOST_KINDS}
    reports = []
    for notice, leaks in followed:
        if isinstance(leaks, str):
            click.echo(f"leaktrace:   child {notice.pid}: {leaks}", err=True)
            continue
        if leaks.report is not None:
            reports.append(leaks.report)
        for kind in LOST_KINDS:
            total[kind][0] += leaks.totals[kind][0]
            total[kind][1] += leaks.totals[kind][1]
        lost = leaks.totals[LOST_KINDS[0]]
        errors = (f"; {leaks.invalid_frees:,} invalid free(s)" if leaks.invalid_frees else "")
        click.echo(f"leaktrace:   child {notice.pid}: definitely lost {lost[0]:,} bytes in "
                   f"{lost[1]:,} blocks{errors}; {report_hint(notice.path)}", err=True)
    click.echo("leaktrace: children together: " + ", ".join(
        f"{kind} {nbytes:,} bytes in {blocks:,} blocks" for kind, (nbytes, blocks)
        in total.items()), err=True)
    return reports


def _untraceable(pid: int, exec_targets: dict[int, str], shim: str) -> str | None:
    """Why the shim could not enter the program process `pid` exec'd last (setuid, static),
    if it exec'd one: tmux's child that runs the setgid utempter writes no capture, and the
    reason is known. Asked only of processes without a capture (a make runs thousands)."""
    image = exec_targets.get(pid)
    return why_untraceable(image, shim) if image else None


def _name_children_without_capture(pid: int, failures: list[CaptureFailure],
                                   vanished: dict[int, str | None]) -> None:
    """Traced children that wrote no capture: each is named with the shim's reason, with the
    program it exec'd that the shim cannot enter, or as ended without one (a SIGKILL, which
    nothing can catch); they are not in the summary."""
    for failure in failures:
        if failure.pid != pid:
            warn(f"child {failure.pid} wrote no capture: the shim could not write "
                 f"{failure.path}: {failure.reason}")
    for child, untraceable in vanished.items():
        if untraceable:
            click.echo(f"leaktrace: child {child} not traced past its last exec: {untraceable}",
                       err=True)
            continue
        warn(f"child {child} ended without a capture (killed by SIGKILL, which no process "
             "can catch, or by a raw exit or exec system call, or under a file size limit "
             "(RLIMIT_FSIZE) it set below the capture's)")


def _name_children_still_running(pids: list[int], capture_dir: str) -> None:
    """Traced children that outlived the program by more than the grace period: not in the
    summary above; each writes its capture when it ends."""
    from leaktrace.control.client import process_name

    for child in pids:
        name = process_name(child) or "?"
        click.echo(f"leaktrace: child {child} ({name}) still runs after the program's end "
                   f"(waited {GRACE_SECONDS:g} s): not counted here; it writes its capture, "
                   f"leaktrace-*.{child}.lt in {capture_dir}, when it ends", err=True)


def _end_unchecked(returncode: int) -> NoReturn:
    """No report could be made: the program's own ending, but never a 0, which would claim
    a clean, checked run."""
    if returncode < 0:
        end_like(returncode)
    raise SystemExit(returncode or USAGE_ERROR)


def _why_no_capture(returncode: int, failures: list[CaptureFailure]) -> str:
    """The true reason, as far as the launcher can know it."""
    if failures:
        last = failures[-1]
        return f"the shim could not write {last.path}: {last.reason}{_address_limit(last)}"
    if returncode < 0:
        name = signal_description(returncode) or "killed by a signal"
        if returncode == -signal.SIGKILL:
            return f"it was {name}, which no process can catch, before the shim could write one"
        if os.environ.get("LEAKTRACE_SIGNALS") == "0":
            return (f"it was {name}, and LEAKTRACE_SIGNALS=0 in the environment asks the shim "
                    "for no capture when a signal kills the program")
        return (f"it was {name} without the shim's handler running: the program set that "
                "signal's action with a raw rt_sigaction system call, a fault came while it "
                "blocked or ignored the signal (the kernel then kills the process at once), or "
                "a thread overflowed its stack with no alternate signal stack to run a handler "
                "on (one that never allocated before, or a Go program's)")
    return (f"it exited with status {returncode} without the shim writing one: it made no "
            "allocation through the shim, or ended through a path the shim does not see "
            "(a raw exit or execve system call, as Go's syscall.Exec makes: ask a running one with "
            "`leaktrace report --pid PID`; an exec of a program the loader does not preload "
            f"into: static, setuid){_limits_it_set()}")


def _limits_it_set() -> str:
    """A program that ends with every descriptor its limit allows open leaves the shim none
    for its capture: the shim raises a soft limit below the hard one, and a privileged
    process's hard limit, not otherwise. One whose hard RLIMIT_FSIZE is above 0 (at 0 the shim
    writes the capture first) but below the capture's size cannot have it written, nor the
    line that would say so (the notify file is a file too). The program may have lowered
    either limit itself, so the limits leaktrace runs with tell nothing: always named."""
    return ("; or it ended with every file descriptor its limit (RLIMIT_NOFILE) allows open, "
            "leaving none for the capture, under a hard limit it could not raise; or it limited "
            "the size of the files it writes (RLIMIT_FSIZE) below the capture's")


def _address_limit(failure: CaptureFailure) -> str:
    """Out of memory under an address-space limit (`ulimit -v`), which the program inherited
    from leaktrace: the shim's tables need address space too."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if failure.error != errno.ENOMEM or limit == resource.RLIM_INFINITY:
        return ""
    return (f" (the address-space limit RLIMIT_AS, `ulimit -v`, is {limit >> 20:,} MiB; the "
            "shim needs about 30 MiB of address space for its tables, more for a program "
            "with many live blocks or backtraces: raise the limit)")


def _list_numbered_captures(pid: int, notices: list[CaptureNotice]) -> None:
    """Every capture written while it ran (report/scan commands, mtrace() checkpoints)."""
    from leaktrace.render.capture_changes import numbered_capture_line

    paths = numbered_captures(pid, notices)
    if paths:
        click.echo(f"leaktrace: {len(paths)} more capture(s) written while it ran:", err=True)
    for path in paths:
        click.echo(f"leaktrace:   {numbered_capture_line(path)}", err=True)


def _check_output_file(output: str) -> None:
    if os.path.lexists(output):
        raise LeaktraceError(f"{output} already exists: leaktrace never overwrites a capture; "
                             "remove it or choose another -o")
    _check_writable_dir(os.path.dirname(output), "the -o directory")


def _check_report_file(path: str, option: str) -> None:
    """Before the run, not after it (the program's status was lost to a late exit 2): a file
    the report may replace, but not a capture, a directory or one it may not write."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise LeaktraceError(f"{option} {path} is a directory")
    if os.path.exists(path):
        refuse_to_overwrite_a_capture(path)
        if not os.access(path, os.W_OK):
            raise LeaktraceError(f"{option} {path} is not writable")
        return
    _check_writable_dir(os.path.dirname(os.path.abspath(path)), f"the {option} directory")


def _check_new_file(path: str, option: str) -> None:
    if os.path.lexists(path):
        raise LeaktraceError(f"{path} already exists: leaktrace never overwrites it; remove it "
                             f"or choose another {option}")
    _check_writable_dir(os.path.dirname(path), f"the {option} directory")


def _check_writable_dir(directory: str, what: str) -> None:
    if not os.path.isdir(directory):
        raise LeaktraceError(f"{what} {directory} does not exist")
    kernel_fs = kernel_filesystem(directory)
    if kernel_fs is not None:
        raise LeaktraceError(f"{what} {directory} is on the kernel's {kernel_fs} filesystem, "
                             "where no file can be created: use -o FILE on a real disk")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise LeaktraceError(f"{what} {directory} is not writable: use -o FILE somewhere "
                             "writable")


def _emit_report(text: str | bytes | Iterable[str], report_file: str | None) -> None:
    if report_file is None:
        write_output(text, None, stream="stderr")
    else:
        try:
            write_output(text, report_file)
        except OSError as e:
            raise LeaktraceError(f"cannot write the report to {report_file}: "
                                 f"{e.strerror or e}") from None
