"""The interactive prompt of `leaktrace shell PID`, modelled on libmemleak's: one word per
command, readline history and tab completion (through the standard cmd module). Each command
is one exchange on the control socket; `top`, `dump`, `growth` and `report` work on a capture
the process writes when asked, so what they show is always current."""

from __future__ import annotations

import cmd
import os
from typing import IO

from leaktrace.analyze.growth import describe_stacks
from leaktrace.commands._capture_report import CaptureReport, load_capture_report
from leaktrace.control.client import ControlError, ProcessGone, send_command
from leaktrace.errors import LeaktraceError
from leaktrace.exit_codes import INPUT_ERROR
from leaktrace.model import LeakRecord
from leaktrace.render.growth_text import frame_lines, interval_table, render_growth_text
from leaktrace.render.process_status import render_status
from leaktrace.render.sizes import human_size

DEFAULT_TOP = 10


class ProcessExited(Exception):
    """The traced process went away: the shell has nothing left to talk to."""


class LeakShell(cmd.Cmd):
    intro = ""
    doc_header = "Commands (help COMMAND for more):"

    def __init__(self, pid: int, stdout: IO[str] | None = None,
                 final_capture: str | None = None) -> None:
        super().__init__(stdout=stdout)
        self.pid = pid
        self.final_capture = final_capture  # where the process writes it at exit
        self.prompt = f"leaktrace {pid}> "
        self.latest: CaptureReport | None = None  # the last capture asked for
        self.ranked: list[LeakRecord] = []  # records in the order `top` showed them
        self.exit_code = 0

    # ---- plumbing ---------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def onecmd(self, line: str) -> bool:
        try:
            return super().onecmd(line)
        except ProcessGone:
            self.say(f"leaktrace: {self._after_exit()}")
            self.exit_code = INPUT_ERROR
            return True
        except LeaktraceError as e:
            self.say(f"leaktrace: error: {e}")
            return False

    def emptyline(self) -> bool:
        return False  # cmd would repeat the last command: never a surprise capture

    def default(self, line: str) -> None:
        self.say(f"unknown command: {line.split()[0]} (type help)")

    def _after_exit(self) -> str:
        final = self._final_capture()
        hint = ""
        if final is not None:
            from leaktrace.invocation import report_hint

            hint = f"; its final capture: {report_hint(final)}"
        return f"process {self.pid} has exited{hint}"

    def _final_capture(self) -> str | None:
        """The final capture the process wrote: at the name it gave (status), or that name
        with ".N" added when a file had it already (the newest such file)."""
        base = self.final_capture
        if base is None and self.latest is not None:
            from leaktrace.capture_names import parse_capture_name

            base = parse_capture_name(self.latest.capture.path).base + ".lt"
        if base is None:
            return None
        stem = base[:-3] if base.endswith(".lt") else base
        directory = os.path.dirname(stem) or "."
        prefix = os.path.basename(stem) + "."
        found = [base] if os.path.exists(base) else []
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        for name in names:
            if name.startswith(prefix) and name.endswith(".lt") and (
                    name[len(prefix):-3].isdigit()):
                found.append(os.path.join(directory, name))
        if not found:
            return None
        return max(found, key=lambda path: os.stat(path).st_mtime_ns if os.path.exists(path) else 0)

    def _send(self, command: str, argument: str | None = None) -> dict[str, object]:
        return send_command(self.pid, command, argument)

    def _capture(self, command: str = "report") -> CaptureReport:
        answer = self._send(command)
        path = str(answer.get("capture", ""))
        if not path:
            raise ControlError(f"process {self.pid} answered `{command}` without a capture")
        self.latest = load_capture_report(path, with_addresses=False)
        self.ranked = sorted(self.latest.report.records,
                             key=lambda r: (-r.bytes, -r.blocks, r.stack_id))
        return self.latest

    # ---- commands ---------------------------------------------------------------------
    def do_status(self, arg: str) -> bool:
        """status: live totals, uptime, snapshots (no capture is written)."""
        self.say(render_status(self._send("status")))
        return False

    def do_top(self, arg: str) -> bool:
        """top [N]: the N largest records now (default 10), with the change since the
        previous capture and each backtrace's growth verdict. Writes a capture."""
        count = _count(arg, DEFAULT_TOP)
        loaded = self._capture()
        report = loaded.report
        previous = report.previous
        since = f" (change since {previous.against})" if previous else ""
        self.say(f"{len(report.records)} records, {human_size(report.summary.live_bytes)} live"
                 f"{since}; capture {loaded.capture.path}")
        rows = [("#", "bytes", "blocks", "change", "growth", "stack", "allocated in")]
        for rank, record in enumerate(self.ranked[:count], start=1):
            change = "-"
            if record.since_previous is not None:
                c = record.since_previous
                change = "new" if c.new else f"{c.bytes:+,} B"
            growth = record.growth.verdict if record.growth else "-"
            rows.append((str(rank), f"{record.bytes:,}", f"{record.blocks:,}", change, growth,
                         record.stack_id, _where(record)))
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        for row in rows:
            self.say("  ".join(cell.rjust(w) if c < 4 else cell.ljust(w)
                               for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     .rstrip())
        return False

    def do_dump(self, arg: str) -> bool:
        """dump N: the whole symbolized backtrace of record N (its rank in the last `top`)
        or of a stack id, with its growth per interval."""
        if not arg.strip():
            self.say("usage: dump N (a rank shown by top, or a stack id)")
            return False
        if self.latest is None:
            self._capture()
        record = self._find(arg.strip())
        if record is None:
            self.say(f"no record {arg.strip()}: run top, then dump a rank or a stack id")
            return False
        self.say(f"stack {record.stack_id} ({record.kind}): {record.bytes:,} bytes in "
                 f"{record.blocks:,} blocks live")
        for line in frame_lines(record.frames, None):
            self.say(f"  {line}")
        growth = self.latest.growth if self.latest else None
        stack = (growth.by_native_id().get(record.native_stack_id)
                 if growth and record.native_stack_id is not None else None)
        if stack is not None:
            self.say(f"growth: {stack.verdict}: {stack.reason}")
            for line in interval_table(stack.intervals):
                self.say(f"  {line}")
        return False

    def complete_dump(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        choices = [str(i) for i in range(1, len(self.ranked) + 1)]
        choices += [r.stack_id for r in self.ranked]
        return [c for c in choices if c.startswith(text)]

    def do_growth(self, arg: str) -> bool:
        """growth [N]: which backtraces keep growing (the N highest ranked, default 10)."""
        count = _count(arg, DEFAULT_TOP)
        loaded = self._capture()
        if loaded.growth is None:
            self.say("this capture has no snapshot series")
            return False
        describe_stacks(loaded.capture, loaded.growth, limit=count)
        self.say(render_growth_text(loaded.growth, count))
        return False

    def do_reset(self, arg: str) -> bool:
        """reset: set the baseline to now; later captures mark older blocks as such."""
        answer = self._send("reset")
        self.say(f"baseline set at {int(str(answer.get('baseline_ms', 0))) / 1000:.3f} s")
        return False

    def do_pause(self, arg: str) -> bool:
        """pause: stop recording new allocations (frees are still seen)."""
        self._send("pause")
        self.say("paused: new allocations are not recorded")
        return False

    def do_resume(self, arg: str) -> bool:
        """resume: record new allocations again."""
        self._send("resume")
        self.say("resumed: new allocations are recorded")
        return False

    def do_interval(self, arg: str) -> bool:
        """interval SECONDS: time between snapshots (fractions allowed, at least 0.01)."""
        if not arg.strip():
            self.say("usage: interval SECONDS")
            return False
        answer = self._send("interval", arg.strip())
        self.say(f"snapshot interval: {int(str(answer['snapshot_interval_ms'])) / 1000:g} s")
        return False

    def do_report(self, arg: str) -> bool:
        """report [FILE]: the full leak report now (to FILE if given). Writes a capture."""
        from leaktrace.commands._report_output import render_report

        loaded = self._capture()
        text = render_report(loaded.report, "text", top=None, min_bytes=0,
                             show_addresses=False)
        target = arg.strip()
        if target:
            try:
                with open(os.path.expanduser(target), "w", encoding="utf-8",
                          errors="surrogateescape") as f:
                    f.write(text)
            except OSError as e:
                raise LeaktraceError(f"cannot write {target}: {e.strerror or e}") from None
            self.say(f"report written to {target} (capture {loaded.capture.path})")
        else:
            self.say(text)
        return False

    def do_scan(self, arg: str) -> bool:
        """scan: reachability scan now (stops the threads briefly), then the leak kinds."""
        from leaktrace.commands._report_output import render_report

        loaded = self._capture("scan")
        self.say(render_report(loaded.report, "text", top=DEFAULT_TOP, min_bytes=0,
                               show_addresses=False))
        return False

    def do_quit(self, arg: str) -> bool:
        """quit: leave the shell (the process goes on)."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:  # the name cmd gives Ctrl-D
        self.say("")
        return True

    def get_names(self) -> list[str]:
        # Keep Ctrl-D's handler out of `help`; cmd's completion and help list these names.
        return [n for n in super().get_names() if n != "do_EOF"]

    def _find(self, key: str) -> LeakRecord | None:
        if key.isdigit() and 1 <= int(key) <= len(self.ranked):
            return self.ranked[int(key) - 1]
        return next((r for r in self.ranked if r.stack_id == key.lower()), None)


def _count(arg: str, default: int) -> int:
    text = arg.strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise LeaktraceError(f"{text} is not a positive number")
    return int(text)


def _where(record: LeakRecord) -> str:
    """The first frame with a function name: usually the caller of malloc."""
    for frame in record.frames:
        if frame.function:
            place = f" {os.path.basename(frame.file)}:{frame.line}" if frame.file else ""
            return f"{frame.function}{place}"
    return "(no backtrace)"
