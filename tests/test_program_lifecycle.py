"""The tracer's life cycle on programs that are not written to be traced: a report when the
program dies of a signal (and the same death), signal handlers the program cannot tell from
its own, allocations made by library constructors before the shim's, a non-PIE program that
takes malloc's address, and a program with an allocator of its own. Each program also runs
without leaktrace: its output and its ending must be the same."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from leakharness import (
    LEAKTRACE,
    allocation_site,
    compile_program,
    json_report,
    leaktrace,
    records_from,
    run_traced,
)
from leakharness import marker_line as leak_marker_line
from native_programs import compile_source, marker_line

FAULTS = {"segv": signal.SIGSEGV, "bus": signal.SIGBUS, "fpe": signal.SIGFPE,
          "ill": signal.SIGILL, "abort": signal.SIGABRT}
SENT = {"term": signal.SIGTERM, "hup": signal.SIGHUP, "quit": signal.SIGQUIT,
        "int": signal.SIGINT, "rt": signal.SIGRTMIN + 2}


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:  # a real-time signal has no name of its own
        return f"signal {sig}"


def _native(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", sorted({**FAULTS, **SENT}))
def test_a_fatal_signal_still_gives_a_report_and_the_same_death(build_dir: Path, tmp_path: Path,
                                                                how: str) -> None:
    exe = compile_program("crash.c", build_dir, "-O2")
    sig = {**FAULTS, **SENT}[how]
    native = _native(str(exe), how)
    assert native.returncode == -sig
    capture = tmp_path / "crash.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), how, cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == -sig, done.stderr  # leaktrace run dies of it too
    assert done.stdout == native.stdout == f"about to die: {how}\n"
    assert f"was killed by {_signal_name(sig)}" in done.stderr
    assert "LEAK SUMMARY" in done.stderr
    report = json_report(capture)
    # The scan ran from the signal handler: leak kinds, not just live blocks.
    assert report["summary"]["definitely_lost"] == {"bytes": 300, "blocks": 3}
    leaks = records_from(report, "crash.c", "crash")  # -O2 may unroll the loop: one per call
    assert (sum(r["bytes"] for r in leaks), sum(r["blocks"] for r in leaks)) == (300, 3)
    assert report["counters"]["fatal_signal"] == sig


# What ended the program, by crash.c's mode: the report's cause, and whether the signal struck
# the program's own code (its frame first) or libc's (abort, kill, free).
CAUSES = {
    "segv": ("SIGSEGV", "address not mapped, at address 0x10", True),
    "bus": ("SIGBUS", "no memory behind the address (a mapped file cut shorter?), at address 0x",
            True),
    "fpe": ("SIGFPE", "integer divide by zero, at address 0x", True),
    "ill": ("SIGILL", "illegal operand, at address 0x", True),
    "abort": ("SIGABRT", "raised by the program itself (abort())", False),
    "term": ("SIGTERM", "raised by the program itself (raise() or kill())", False),
    "rt": ("SIGRTMIN+2", "raised by the program itself (raise() or kill())", False),
    "thread-segv": ("SIGSEGV", "address not mapped, at address 0x18", True),
    "call-null": ("SIGSEGV", "address not mapped, at address 0x0", False),
    "double-free": ("SIGABRT", "raised by the program itself (abort())", False),
    "reraise": ("SIGSEGV", "raised by the program itself (raise() or kill())", False),
}


@pytest.mark.parametrize(("opt", "how"), [("-O2", how) for how in CAUSES]
                         + [("-O0", how) for how in ("segv", "thread-segv", "call-null",
                                                     "double-free", "reraise")])
def test_the_report_says_which_signal_ended_the_program_and_where(build_dir: Path,
                                                                  tmp_path: Path, opt: str,
                                                                  how: str) -> None:
    """valgrind prints how a program it ran died ("Process terminating with default action of
    signal 11 (SIGSEGV): Access not within mapped region at address 0x10, at main (crash.c:52)");
    the report said only that a signal ended it. Now it names the signal, its cause, the thread
    it struck and that thread's backtrace, symbolized: for a double free, the program's second
    free() under glibc's abort; for a fault a handler of the program's raised again (Python's
    faulthandler does), the fault that handler was called for."""
    exe = compile_program("crash.c", build_dir, opt)
    native = _native(str(exe), how)
    capture = tmp_path / "crash.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), how, cwd=tmp_path)
    assert done.returncode == native.returncode < 0, done.stderr
    name, cause, in_program = CAUSES[how]
    number = -native.returncode
    assert f"== The program was ended by {name} (signal {number}) ==" in done.stderr
    report = json_report(capture)
    fatal = report["fatal_signal"]
    assert (fatal["signal"], fatal["name"]) == (number, name)
    assert fatal["cause"].startswith(cause), fatal["cause"]
    fault = in_program or how == "call-null"  # else the program sent it to itself
    assert (fatal["address"] is None, fatal["sender_pid"]) == (
        (False, None) if fault else (True, report["pid"]))
    assert fatal["main_thread"] == (how != "thread-segv")
    assert fatal["thread_name"] == ("worker-7" if how == "thread-segv" else exe.name[:15])
    assert not fatal["truncated"] and not fatal["in_shim"]
    assert fatal["handled"] == ("address not mapped, at address 0x20" if how == "reraise"
                                else None)
    frames = fatal["frames"]
    ours = [(f["function"], f["line"]) for f in frames
            if f["file"] and Path(f["file"]).name == "crash.c"]
    marker = {"term": "die-sent", "rt": "die-sent", "reraise": "die-reraise-handler"}.get(
        how, f"die-{how}")
    lines = {leak_marker_line("crash.c", marker)}
    if how == "double-free":  # at -O2, release() tail-calls free: main's call of it is seen
        lines.add(leak_marker_line("crash.c", "die-double-free-again"))
    assert ours and ours[0][1] in lines, frames
    assert ours[-1][0] == ("worker" if how == "thread-segv" else "main"), ours
    if in_program:  # the faulting instruction is the program's, and the first frame
        assert (frames[0]["function"], frames[0]["line"]) == ours[0]
    if how == "call-null":  # a jump to address 0: its caller comes next
        assert frames[0]["address"] == 0 and frames[0]["function"] is None
        assert (frames[1]["function"], frames[1]["line"]) == ours[0]
    if how == "double-free":
        assert any(f["function"] == "abort" for f in frames), frames
    if how == "reraise":  # the handler's raise, then through the signal frame to the fault
        assert ours == [("reraise", lines.pop()), ("main", leak_marker_line("crash.c",
                                                                            "die-reraise"))]


def test_threads_dying_at_once_report_the_one_that_wrote_the_capture(build_dir: Path,
                                                                     tmp_path: Path) -> None:
    """Eight threads call abort() at once: one writes the capture, the others wait for it. The
    report's signal and backtrace are that thread's (the first thread to describe its death was
    kept before, and when another one won the capture, the report said nothing of how the
    program ended)."""
    exe = compile_program("crash.c", build_dir, "-O2")
    line = leak_marker_line("crash.c", "die-aborts")
    for round_ in range(8):
        capture = tmp_path / f"aborts-{round_}.lt"
        done = leaktrace("run", "-o", str(capture), "--", str(exe), "aborts", cwd=tmp_path)
        assert done.returncode == -signal.SIGABRT, done.stderr
        fatal = json_report(capture)["fatal_signal"]
        assert fatal is not None and fatal["name"] == "SIGABRT", round_
        assert not fatal["main_thread"]
        ours = [(f["function"], f["line"]) for f in fatal["frames"]
                if f["file"] and Path(f["file"]).name == "crash.c"]
        assert ours == [("aborter", line)], fatal["frames"]


def _killed_while_allocating(exe: Path, mode: str,
                             capture: Path) -> subprocess.CompletedProcess[str]:
    """`leaktrace run` of busy_when_killed.c, sent SIGTERM (as a supervisor stops a service)
    once the program allocates without a pause; in mode winch-exit the program is sent
    SIGWINCH itself (and in mode winch-exec)."""
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe), mode],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        time.sleep(0.02)
        if mode.startswith("winch-"):
            children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
            os.kill(int(children[0]), signal.SIGWINCH)
        else:
            run.send_signal(signal.SIGTERM)  # leaktrace passes it on to the program
        out, err = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    return subprocess.CompletedProcess(run.args, run.returncode, "ready\n" + out, err)


@pytest.mark.parametrize("mode", ["main", "threads", "handler-exit", "resethand-exit",
                                  "winch-exit"])
def test_a_signal_that_finds_its_thread_in_malloc_still_gets_the_scan(build_dir: Path,
                                                                      tmp_path: Path,
                                                                      mode: str) -> None:
    """A SIGTERM that arrived while its thread was inside the shim (recording a block, holding
    part of the table) gave a capture without leak kinds: the scan cannot take a table the
    thread is half-way through. One time in three for a program that allocates all the time.
    A handler of the program's that called _exit() there hung the program for ever (the capture
    waited for the table the thread held itself). The shim now sends itself the signal again a
    few microseconds later, when the thread is back in the program, and the program's handler
    of a signal the launcher passes on (SIGTERM, also one installed with SA_RESETHAND) runs
    then. One it does not pass on (SIGWINCH)
    runs at once, as before; its _exit writes the capture without waiting for the table, and
    without the scan when the thread held it (the note says why). Sixteen rounds each: the same
    end as natively; the leaked block definitely lost every time the scan ran."""
    exe = compile_program("busy_when_killed.c", build_dir, "-O2")
    end = 3 if mode.endswith("-exit") else -signal.SIGTERM
    native = subprocess.Popen([str(exe), mode], stdout=subprocess.PIPE, text=True)
    assert native.stdout is not None and native.stdout.readline() == "ready\n"
    native.send_signal(signal.SIGWINCH if mode == "winch-exit" else signal.SIGTERM)
    assert native.wait(timeout=60) == end
    native.stdout.close()
    site = ("busy_when_killed.c", leak_marker_line("busy_when_killed.c", "busy"))
    for round_ in range(16):
        capture = tmp_path / f"busy{round_}.lt"
        done = _killed_while_allocating(exe, mode, capture)
        assert done.returncode == end, done.stderr
        assert "Traceback" not in done.stderr
        report = json_report(capture)
        if end < 0:
            assert "was killed by SIGTERM" in done.stderr
            assert report["counters"]["fatal_signal"] == signal.SIGTERM
        if mode == "winch-exit" and report["summary"].get("definitely_lost") is None:
            assert any("interrupted the shim's work (inside malloc or free)" in note
                       for note in report["notes"]), report["notes"]
            continue
        assert report["summary"]["definitely_lost"] == {"bytes": 77, "blocks": 1}, (
            round_, report["notes"])
        [leak] = [r for r in report["records"] if r["leak_kind"] == "definitely lost"]
        assert allocation_site(leak, "busy_when_killed.c") == site


def test_an_exec_from_a_handler_over_malloc_does_not_hang(build_dir: Path,
                                                          tmp_path: Path) -> None:
    """A handler of the program's that execs while its thread was inside the shim's table (a
    signal `leaktrace run` does not pass on, so the handler runs at once): the capture before
    the exec waited for the table the thread held itself, and the program hung for ever. It is
    now written without waiting (and without the scan then). Sixteen rounds: each ends as
    natively, with /bin/true's status 0."""
    exe = compile_program("busy_when_killed.c", build_dir, "-O2")
    for round_ in range(16):
        done = _killed_while_allocating(exe, "winch-exec", tmp_path / f"exec{round_}.lt")
        assert (done.returncode, done.stdout) == (0, "ready\n"), (round_, done.stderr)
        assert "Traceback" not in done.stderr


def test_a_fork_from_a_handler_over_a_mapping_hook_does_not_hang(build_dir: Path,
                                                                 tmp_path: Path) -> None:
    """A SIGPROF handler that forks while the main thread maps and unmaps memory: the shim's
    fork handler waited for the regions lock its own thread held in the interrupted mmap hook,
    and the program hung for ever. It takes none of the shim's locks then (the child is not
    traced). Three runs: 100 forks each, as natively."""
    exe = compile_program("fork_in_handler.c", build_dir, "-O2")
    native = _native(str(exe))
    assert (native.returncode, native.stdout) == (0, "forked 100 times\n")
    for round_ in range(3):
        done = leaktrace("run", "-o", str(tmp_path / f"fork{round_}.lt"), "--", str(exe),
                         cwd=tmp_path, timeout=60)
        assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
        assert "Traceback" not in done.stderr


def test_leaktrace_signals_0_leaves_no_capture_and_run_says_why(build_dir: Path,
                                                                 tmp_path: Path) -> None:
    """LEAKTRACE_SIGNALS=0 (leaktrace --help): no capture when a signal kills the program,
    which still dies of it; `run` names the setting as the reason, not a raw rt_sigaction
    or a blocked fault (what it said before)."""
    exe = compile_program("crash.c", build_dir, "-O2")
    capture = tmp_path / "crash.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe), "term"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "LEAKTRACE_SIGNALS": "0"})
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert done.stdout == "about to die: term\n"
    assert not capture.exists()
    assert "Traceback" not in done.stderr
    assert ("no capture was written for " in done.stderr
            and "it was killed by SIGTERM, and LEAKTRACE_SIGNALS=0 in the environment asks the "
                "shim for no capture when a signal kills the program" in done.stderr), done.stderr
    assert "rt_sigaction" not in done.stderr


def test_abort_from_a_handler_on_a_small_alternate_stack(build_dir: Path, tmp_path: Path) -> None:
    """As Rust's stack-overflow handler does: natively a death by SIGABRT. The shim's SIGABRT
    handler runs on what is left of that stack; its first libc call, bound lazily, overflowed
    it (death by SIGSEGV, no capture). The shim is bound at load now."""
    exe = compile_program("altstack_abort.c", build_dir, "-O0")
    native = _native(str(exe))
    assert native.returncode == -signal.SIGABRT
    capture = tmp_path / "abort.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
    assert done.returncode == -signal.SIGABRT, done.stderr
    assert done.stdout == native.stdout == "fault, aborting\n"
    assert json_report(capture)["counters"]["fatal_signal"] == signal.SIGABRT


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_realloc_keeps_what_the_program_wrote_in_the_usable_size(build_dir: Path,
                                                                 tmp_path: Path, opt: str) -> None:
    """The shim clears the bytes of a grown block the program has not written: those past
    the old block's usable size, not past the size it asked for (Redis lost string bytes)."""
    exe = compile_program("realloc_usable.c", build_dir, opt)
    native = _native(str(exe))
    done = leaktrace("run", "-o", str(tmp_path / "realloc.lt"), "--", str(exe), cwd=tmp_path)
    assert native.returncode == done.returncode == 0, done.stderr
    lines = native.stdout.splitlines()
    assert len(lines) == 20 and all(line.split(": ")[1].split(" of ")[0]
                                    == line.split(" of ")[1] for line in lines)
    assert done.stdout == native.stdout


def test_a_process_title_with_slashes_keeps_the_capture_name(build_dir: Path,
                                                             tmp_path: Path) -> None:
    """Default capture names come from the program's name as it started: a title written
    over argv[0] (with '/' in it) made the capture's path name a missing directory."""
    exe = compile_program("process_title.c", build_dir, "-O0")
    long_name = tmp_path / "titled-program"  # its full path leaves room for the title
    shutil.copy(exe, long_name)
    done = leaktrace("run", "--", str(long_name), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
    [capture] = tmp_path.glob("leaktrace-*.lt")
    assert capture.name.startswith(f"leaktrace-{long_name.name}.")
    assert "definitely lost: 100 bytes in 1 blocks" in done.stderr
    # The title is shorter than the path it replaced: the rest of that space is NULs.
    assert "command:  'titled: master process /etc/titled/titled.conf'\n" in done.stderr


PYTHON_CATCHES_CTRL_C = """
import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    print("not interrupted")
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
finally:
    print("finally ran")
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
      signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


def test_python_gets_its_keyboard_interrupt(tmp_path: Path) -> None:
    native = _native(sys.executable, "-c", PYTHON_CATCHES_CTRL_C)
    done = leaktrace("run", "-o", str(tmp_path / "py.lt"), "--", sys.executable, "-c",
                     PYTHON_CATCHES_CTRL_C, cwd=tmp_path)
    assert native.stdout == "caught KeyboardInterrupt\nfinally ran\nTrue True\n"
    assert native.returncode == 0
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout)
    assert (tmp_path / "py.lt").exists()


PYTHON_LEAVES_CTRL_C_UNCAUGHT = """
import os, signal, time
print("about to be interrupted", flush=True)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(5)
print("not interrupted")
"""


def test_python_dying_of_an_uncaught_ctrl_c_still_gives_a_report(tmp_path: Path) -> None:
    """CPython puts SIGINT's default back and sends it to itself again after it has
    finalized: the death is the same, and the shim's stand-in for the default is back in
    place to write the capture first."""
    native = _native(sys.executable, "-c", PYTHON_LEAVES_CTRL_C_UNCAUGHT)
    capture = tmp_path / "py.lt"
    done = leaktrace("run", "-o", str(capture), "--", sys.executable, "-c",
                     PYTHON_LEAVES_CTRL_C_UNCAUGHT, cwd=tmp_path)
    assert native.returncode == done.returncode == -signal.SIGINT, done.stderr
    assert native.stdout == done.stdout == "about to be interrupted\n"
    assert "KeyboardInterrupt" in native.stderr and "KeyboardInterrupt" in done.stderr
    assert "was killed by SIGINT" in done.stderr and "LEAK SUMMARY" in done.stderr
    assert json_report(capture)["counters"]["fatal_signal"] == signal.SIGINT


CLEANUP_HANDLER = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const char *how;
/* signal, sigaction, siginfo: the handler puts the default back itself (siginfo: as Go's
 * runtime does, SA_SIGINFO with a null sa_sigaction); resethand, sysv: the kernel does, as the
 * signal is delivered (SA_RESETHAND; sysv_signal's also leaves the signal unblocked). */
static void cleanup_then_die(int sig)
{
    static const char note[] = "cleaned up\n";
    write(1, note, sizeof note - 1);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    if (strcmp(how, "signal") == 0) signal(sig, SIG_DFL);
    else if (strcmp(how, "sigaction") == 0) sigaction(sig, &dfl, NULL);
    else if (strcmp(how, "siginfo") == 0) {
        dfl.sa_flags = SA_SIGINFO;
        sigaction(sig, &dfl, NULL);
    }
    struct sigaction now;
    sigaction(sig, NULL, &now);
    if (now.sa_handler != SIG_DFL) write(1, "not reset\n", 10);
    raise(sig); /* the default action: at once, or as this handler returns */
}
__attribute__((noinline)) static void leak(size_t n)
{
    char *volatile p = malloc(n); /* cleanup-leak */
    p[0] = 1;
}
int main(int argc, char **argv)
{
    how = argc > 1 ? argv[1] : "signal";
    if (strcmp(how, "resethand") == 0) {
        struct sigaction sa, seen;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = cleanup_then_die;
        sa.sa_flags = SA_RESETHAND;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGTERM, NULL, &seen);
        if (seen.sa_handler != cleanup_then_die || !(seen.sa_flags & SA_RESETHAND))
            printf("seen otherwise\n");
    } else if (strcmp(how, "sysv") == 0) {
        if (sysv_signal(SIGTERM, cleanup_then_die) != SIG_DFL) printf("not the default before\n");
    } else {
        signal(SIGTERM, cleanup_then_die);
    }
    for (int i = 0; i < 4; i++) leak(25);
    printf("about to be terminated\n");
    fflush(stdout);
    raise(SIGTERM);
    printf("not terminated\n");
    return 0;
}
"""


@pytest.mark.parametrize("how", ["signal", "sigaction", "siginfo", "resethand", "sysv"])
def test_a_handler_that_puts_the_default_back_and_raises_still_gives_a_report(
        tmp_path: Path, how: str) -> None:
    exe = compile_source(tmp_path, "cleanup.c", CLEANUP_HANDLER, "-O2")
    native = _native(str(exe), how)
    capture = tmp_path / "cleanup.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), how, cwd=tmp_path)
    assert native.returncode == done.returncode == -signal.SIGTERM, done.stderr
    assert native.stdout == done.stdout == "about to be terminated\ncleaned up\n"
    report = json_report(capture)
    assert report["counters"]["fatal_signal"] == signal.SIGTERM
    assert report["summary"]["definitely_lost"] == {"bytes": 100, "blocks": 4}
    line = marker_line(CLEANUP_HANDLER, "cleanup-leak")
    lost = [r for r in report["records"] if r["leak_kind"] == "definitely lost"]
    # -O2 may unroll the loop: one record per call site, all on the marked line.
    assert {(r["frames"][0]["function"], r["frames"][0]["line"]) for r in lost} == {("leak", line)}
    assert sum(r["blocks"] for r in lost) == 4


SIGNAL_VIEW = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
static void handler(int sig) { printf("handler %d\n", sig); }
int main(void)
{
    int sigs[] = { SIGINT, SIGTERM, SIGSEGV, SIGHUP };
    for (int i = 0; i < 4; i++) {
        struct sigaction old;
        sigaction(sigs[i], NULL, &old);
        int dfl = old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO);
        printf("%d default=%d\n", sigs[i], dfl);
    }
    printf("signal returns default=%d\n", signal(SIGTERM, handler) == SIG_DFL);
    raise(SIGTERM);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    struct sigaction old;
    sigaction(SIGTERM, &dfl, &old);
    printf("own handler back=%d\n", old.sa_handler == handler);
    signal(SIGHUP, SIG_IGN);
    raise(SIGHUP); /* ignored, as the program asked */
    printf("still here\n");
    return 3;
}
"""


def test_the_program_sees_its_own_signal_dispositions(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "signal_view.c", SIGNAL_VIEW, "-O2")
    native = _native(str(exe))
    done = leaktrace("run", "-o", str(tmp_path / "view.lt"), "--", str(exe), cwd=tmp_path)
    assert native.returncode == 3 and "handler 15\n" in native.stdout
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout)


def test_the_program_inherits_the_descriptors_given_to_leaktrace(tmp_path: Path) -> None:
    """A shell's `5>file` or `6<(...)`, a make jobserver's pipe: descriptors the caller opened
    for the program reach it through leaktrace as they do without it."""

    def run_with_descriptors(*argv: str) -> tuple[int, str, str]:
        written = tmp_path / "out.txt"
        read_end, write_end = os.pipe()
        os.write(write_end, b"piped\n")
        os.close(write_end)
        out = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        unopened = max(out, read_end) + 1  # given to neither run
        script = (f"echo written >&{out}; read -r line <&{read_end}; echo \"read $line\"; "
                  f"ls /proc/self/fd/{unopened}")
        try:
            done = subprocess.run([*argv, "bash", "-c", script], capture_output=True, text=True,
                                  timeout=60, pass_fds=(out, read_end), cwd=tmp_path)
        finally:
            os.close(out)
            os.close(read_end)
        return done.returncode, done.stdout, written.read_text()

    native = run_with_descriptors()
    traced = run_with_descriptors(*LEAKTRACE, "run", "-o", str(tmp_path / "fds.lt"), "--")
    assert native == (2, "read piped\n", "written\n")  # ls: no such descriptor
    assert traced == native


WAIT_FOR_A_SIGNAL = r"""
#include <stdio.h>
#include <unistd.h>
int main(void)
{
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    for (;;) pause();
}
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                                 signal.SIGALRM])
def test_a_signal_sent_to_leaktrace_reaches_the_program(tmp_path: Path, sig: int) -> None:
    """A supervisor signals the pid it started, leaktrace's: the program gets the signal (and
    dies of it here, as natively) and leaktrace ends the same way."""
    exe = compile_source(tmp_path, "wait_signal.c", WAIT_FOR_A_SIGNAL, "-O2")
    launcher = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "w.lt"), "--", str(exe)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
    assert launcher.stdout is not None
    program_pid = int(launcher.stdout.readline().split()[1])
    launcher.send_signal(sig)
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == -sig, stderr
    assert f"was killed by {signal.Signals(sig).name}" in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(program_pid, 0)


SHOW_DISPOSITIONS = r"""
#include <signal.h>
#include <stdio.h>
int main(void)
{
    static const struct { int sig; const char *name; } shown[] = {
        { SIGINT, "INT" }, { SIGQUIT, "QUIT" }, { SIGHUP, "HUP" }, { SIGTERM, "TERM" },
        { SIGPIPE, "PIPE" }, { SIGUSR1, "USR1" },
    };
    for (unsigned i = 0; i < sizeof shown / sizeof *shown; i++) {
        struct sigaction sa;
        sigaction(shown[i].sig, NULL, &sa);
        printf("%s=%s ", shown[i].name, sa.sa_handler == SIG_IGN ? "ignored" : "default");
    }
    putchar('\n');
    return 0;
}
"""


def _ignore_hangup_and_interrupts() -> None:
    """What `nohup` and a shell's background job do before exec."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def test_the_program_inherits_the_signals_leaktrace_was_started_with_ignored(
        tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "dispositions.c", SHOW_DISPOSITIONS, "-O2")
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                            preexec_fn=_ignore_hangup_and_interrupts)
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "sig.lt"), "--", str(exe)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          preexec_fn=_ignore_hangup_and_interrupts)
    assert native.stdout == ("INT=ignored QUIT=ignored HUP=ignored TERM=default PIPE=default "
                             "USR1=ignored \n")
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr


OWN_QUIT_HANDLER = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_quit(int sig) { got = sig; }
int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit;
    sigaction(SIGQUIT, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < 200 && !got; i++) usleep(50000);
    printf("got %d\n", (int)got);
    return 0;
}
"""


def test_a_signal_ignored_at_start_still_reaches_a_program_that_handles_it(
        tmp_path: Path) -> None:
    """A shell without job control starts `leaktrace run PROG &` with SIGINT and SIGQUIT
    ignored; its `kill -QUIT $!` reached a program with a handler of its own natively, and
    never under leaktrace, which kept the signal ignored instead of passing it on."""
    exe = compile_source(tmp_path, "own_quit.c", OWN_QUIT_HANDLER, "-O2")
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "q.lt"), "--", str(exe)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path, preexec_fn=_ignore_hangup_and_interrupts)
    assert run.stdout is not None
    assert run.stdout.readline() == "ready\n"
    run.send_signal(signal.SIGQUIT)
    out, err = run.communicate(timeout=60)
    assert (run.returncode, out) == (0, f"got {int(signal.SIGQUIT)}\n"), err


EVERY_KEY_AND_MANY_THREADS = r"""
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
/* Takes every pthread key the process has (LSan's many_tls_keys case), then runs 9,000
 * threads one after the other, more than the shim's registry has slots: each keeps one block. */
#define THREADS 9000
static void *kept[THREADS];
static void *keep_one(void *slot)
{
    *(void **)slot = malloc(24); /* @leak:thread_block */
    return NULL;
}
int main(void)
{
    static pthread_key_t keys[PTHREAD_KEYS_MAX];
    int n = 0;
    while (n < PTHREAD_KEYS_MAX && pthread_key_create(&keys[n], NULL) == 0) n++;
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, keep_one, &kept[i]) != 0) return 1;
        pthread_join(t, NULL);
    }
    printf("%d keys\n", n);
    return 0;
}
"""


def test_the_program_has_every_pthread_key_and_any_number_of_threads(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "every_key.c", EVERY_KEY_AND_MANY_THREADS, "-O2", "-pthread")
    native = _native(str(exe))
    done = leaktrace("run", "-o", str(tmp_path / "keys.lt"), "--", str(exe), cwd=tmp_path,
                     timeout=300)
    assert native.returncode == 0 and native.stdout == "1024 keys\n"
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr
    report = json_report(tmp_path / "keys.lt")
    [record] = [r for r in report["records"] if r["total_allocations"] == 9000]
    assert (record["blocks"], record["bytes"], record["leak_kind"]) == (
        9000, 9000 * 24, "still reachable")


AUXV_AFTER_ENVIRONMENT = r"""
#include <elf.h>
#include <stdio.h>
#include <sys/auxv.h>
/* The auxiliary vector lies right after the NULL that ends the environment: Go's runtime
 * finds it so from the initial stack (argv + argc + 1), older C code from main's envp. */
static const char *page_size_after(char **env)
{
    while (*env) env++;
    for (unsigned long *aux = (unsigned long *)(env + 1); aux[0] != AT_NULL; aux += 2) {
        if (aux[0] > 64) return "garbage"; /* not an AT_ type */
        if (aux[0] == AT_PAGESZ) return aux[1] == getauxval(AT_PAGESZ) ? "found" : "wrong";
    }
    return "lost";
}
int main(int argc, char **argv, char **envp)
{
    printf("from the stack: %s, from envp: %s\n", page_size_after(argv + argc + 1),
           page_size_after(envp));
    return 0;
}
"""


def test_the_initial_stack_keeps_its_layout(tmp_path: Path) -> None:
    """The shim hides its settings from `environ` with an array of its own: the one on the
    initial stack stays whole, or runtimes that walk past it to the auxiliary vector (Go's,
    cgo programs included) read garbage ("failed to get system page size")."""
    exe = compile_source(tmp_path, "auxv.c", AUXV_AFTER_ENVIRONMENT, "-O2")
    native = _native(str(exe))
    done = leaktrace("run", "-o", str(tmp_path / "auxv.lt"), "--", str(exe), cwd=tmp_path)
    assert native.stdout == "from the stack: found, from envp: found\n"
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr


TITLE_AREA = """
#include <stdio.h>
#include <string.h>
extern char **environ;
int main(int argc, char **argv)
{
    /* As OpenSSH's setproctitle (and PostgreSQL's, nginx's): the argument strings, then the
     * environment strings for as long as each starts right after the one before. */
    char *last = NULL;
    for (int i = 0; i < argc; i++)
        if (last == NULL || last + 1 == argv[i]) last = argv[i] + strlen(argv[i]);
    int n = 0;
    for (; environ[n]; n++)
        if (last + 1 == environ[n]) last = environ[n] + strlen(environ[n]);
    int whole = n > 0 && last == environ[n - 1] + strlen(environ[n - 1]);
    printf("%d variables, title area %s\\n", n, whole ? "through the last" : "cut short");
    return 0;
}
"""


def test_a_process_title_gets_the_room_it_gets_natively(tmp_path: Path) -> None:
    """The settings the shim hides from the program (LEAKTRACE_*, its LD_PRELOAD) come last
    in the environment: between the program's own variables, they broke the run of strings a
    setproctitle takes for its area, and sshd's title was cut to the length of its arguments."""
    exe = compile_source(tmp_path, "title.c", TITLE_AREA, "-O2")
    env = {"LEAKTRACE_CONTROL_DIR": str(tmp_path / "ctl"), **os.environ}
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in env.items() if not k.startswith("LEAKTRACE_")})
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "title.lt"), "--", str(exe)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert native.stdout.endswith("title area through the last\n"), native.stdout
    assert done.stdout == native.stdout, done.stderr


def test_the_program_finds_its_own_path_in_underscore(tmp_path: Path) -> None:
    """A shell sets `_` to the path of the command it runs, here leaktrace's: the program
    sees its own there, as natively (`env` prints it, bash keeps it as `$_` and copies it
    into its memory); `_` naming anything else is left alone."""
    env_program = shutil.which("env")
    assert env_program is not None
    for underscore, seen in ((sys.executable, env_program), ("/somewhere/else", "/somewhere/else")):
        done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / f"{len(seen)}.lt"), "--",
                               "env"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "_": underscore})
        assert done.returncode == 0, done.stderr
        assert f"_={seen}\n" in done.stdout, done.stdout


CONSTRUCTOR_LIBRARY = """
#include <stdlib.h>
void *volatile library_sink;
__attribute__((constructor)) static void library_init(void)
{
    library_sink = malloc(1000); /* ctor-leak */
    library_sink = NULL;
}
int library_answer(void) { return 42; }
"""
CONSTRUCTOR_MAIN = """
#include <stdio.h>
int library_answer(void);
int main(void) { printf("%d\\n", library_answer()); return 0; }
"""


def test_allocations_of_library_constructors_are_traced(tmp_path: Path) -> None:
    library = compile_source(tmp_path, "libctor.c", CONSTRUCTOR_LIBRARY, "-shared", "-fPIC",
                             "-O2")
    library.rename(tmp_path / "libctor.so")
    (tmp_path / "ctor_main.c").write_text(CONSTRUCTOR_MAIN)
    exe = tmp_path / "ctor_main"
    subprocess.run(["gcc", "-g", "-o", str(exe), str(tmp_path / "ctor_main.c"), f"-L{tmp_path}",
                    "-lctor", f"-Wl,-rpath,{tmp_path}"], check=True, capture_output=True)
    done = leaktrace("run", "-o", str(tmp_path / "ctor.lt"), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    report = json_report(tmp_path / "ctor.lt")
    line = marker_line(CONSTRUCTOR_LIBRARY, "ctor-leak")
    leaks = [r for r in report["records"] if r["leak_kind"] == "definitely lost"
             and any(f.get("file", "").endswith("libctor.c") and f.get("line") == line
                     for f in r["frames"])]
    assert [(r["bytes"], r["blocks"]) for r in leaks] == [(1000, 1)]


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_allocations_before_libc_starts_are_traced(build_dir: Path, tmp_path: Path,
                                                   opt: str) -> None:
    """An executable's .preinit_array runs before libc has set `environ`, where the shim's
    settings are: its blocks went unrecorded ("No leaks"), while valgrind reports them. The
    program still sees none of the settings, and the capture is named after it."""
    exe = compile_program("preinit_alloc.c", build_dir, opt)
    # os.environ, as leaktrace() passes it: libraries of this process may have setenv'd more
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                            env=os.environ.copy())
    assert native.returncode == 0 and native.stdout.startswith("environment: ")
    done = leaktrace("run", "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    [capture] = tmp_path.glob(f"leaktrace-{exe.name}.*.lt")
    report = json_report(capture)
    found = {}
    for marker in ("preinit_lost", "preinit_kept", "main_lost"):
        line = leak_marker_line("preinit_alloc.c", marker)
        found[marker] = [(r["leak_kind"], r["bytes"], r["blocks"]) for r in report["records"]
                         if allocation_site(r, "preinit_alloc.c") == ("preinit_alloc.c", line)]
    assert found == {"preinit_lost": [("definitely lost", 111, 1)],
                     "preinit_kept": [("still reachable", 333, 1)],
                     "main_lost": [("definitely lost", 44, 1)]}


NON_PIE = """
#include <stdio.h>
#include <stdlib.h>
void *(*volatile allocate)(size_t) = malloc; /* malloc's address: the PLT stub's in non-PIE */
void *volatile sink;
int main(void)
{
    sink = allocate(123); /* non-pie-leak */
    sink = NULL;
    puts("done");
    return 4;
}
"""


def test_non_pie_program_that_takes_mallocs_address_is_traced(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "nonpie.c", NON_PIE, "-O0", "-fno-pic", "-no-pie")
    done = leaktrace("run", "-o", str(tmp_path / "nonpie.lt"), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (4, "done\n"), done.stderr
    report = json_report(tmp_path / "nonpie.lt")
    assert report["summary"]["definitely_lost"] == {"bytes": 123, "blocks": 1}


OWN_ALLOCATOR = """
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
static char *arena, *next;
void *malloc(size_t n)
{
    if (!arena) next = arena = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *p = next;
    next += (n + 15) & ~(size_t)15;
    return p;
}
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t m) { void *p = malloc(n * m); memset(p, 0, n * m); return p; }
void *realloc(void *old, size_t n)
{
    void *p = malloc(n);
    if (old) memcpy(p, old, n);
    return p;
}
#ifdef LIBC_NAMES /* glibc's own entry points too, as Chromium's PartitionAlloc and tcmalloc */
void *__libc_malloc(size_t n) { return malloc(n); }
void __libc_free(void *p) { free(p); }
void *__libc_calloc(size_t n, size_t m) { return calloc(n, m); }
void *__libc_realloc(void *old, size_t n) { return realloc(old, n); }
#endif
int main(int argc, char **argv)
{
    (void)argv;
    void *volatile p = malloc(100);
    (void)p;
    puts("own allocator");
    return argc > 1 ? 0 : 9;
}
"""


@pytest.mark.parametrize("libc_names", [False, True])
@pytest.mark.parametrize("status", [9, 0])
def test_a_program_with_its_own_malloc_is_told_so_and_keeps_its_exit_code(
        tmp_path: Path, libc_names: bool, status: int) -> None:
    """Defining __libc_malloc too (Chromium does) made the shim take itself for dlopen'd (it
    found libc by that name): no capture, and `run` ended 2 for the program's 0."""
    exe = compile_source(tmp_path, "own_malloc.c", OWN_ALLOCATOR, "-O0",
                         *(["-DLIBC_NAMES"] if libc_names else []))
    args = ["zero"] if status == 0 else []
    done = leaktrace("run", "-o", str(tmp_path / "own.lt"), "--", str(exe), *args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (status, "own allocator\n"), done.stderr
    assert "Traceback" not in done.stderr
    notes = json_report(tmp_path / "own.lt")["notes"]
    assert any("the program defines its own malloc, free, calloc, realloc" in n
               and "not traced" in n for n in notes), notes
    assert "defines its own malloc" in done.stderr
    assert "No heap blocks seen: the program allocates with a malloc of its own" in done.stderr


def test_a_signal_during_the_final_capture_waits_for_it(build_dir: Path,
                                                        tmp_path: Path) -> None:
    """A SIGTERM that comes while the shim writes the final capture (a pool's parent
    terminating its workers as they exit) used to make the dying thread wait 30 s for the
    capture it was itself writing, which it never finished. It now ends the process as soon
    as the capture is written."""
    exe = compile_program("term_during_exit.c", build_dir, "-O2")
    capture = tmp_path / "term.lt"
    started = time.monotonic()
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe)],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert line.endswith(" exiting\n"), line
        time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):  # it had ended already
            os.kill(int(line.split()[0]), signal.SIGTERM)
        run.communicate(timeout=60)
    finally:
        run.kill()
    assert time.monotonic() - started < 20
    assert run.returncode in (0, -signal.SIGTERM)
    summary = json_report(capture)["summary"]
    # The array in main's dead frame: lost, and the million blocks it holds with it.
    assert summary["definitely_lost"]["blocks"] == 1
    assert summary["indirectly_lost"]["blocks"] == 1_000_000


def _loader_lock_leak(report: dict) -> tuple[int, int]:
    records = records_from(report, "exit_in_loader_lock.c", "loader_locked")
    return sum(r["bytes"] for r in records), sum(r["blocks"] for r in records)


def test_exit_while_another_thread_holds_the_loaders_lock(build_dir: Path, tmp_path: Path) -> None:
    """A thread inside a dl_iterate_phdr callback that never returns holds the loader's lock;
    natively the process still ends at once. The shim's final module list used to wait for
    that lock, and the process hung at exit."""
    exe = compile_program("exit_in_loader_lock.c", build_dir, "-O2")
    capture = tmp_path / "locked.lt"
    started = time.monotonic()
    done = leaktrace("run", "-o", str(capture), "--", str(exe), timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode == 0, done.stderr
    report = json_report(capture)
    assert _loader_lock_leak(report) == (77, 1)
    assert report["summary"]["definitely_lost"]["bytes"] == 77


def _ran_on_after_exit_ms(times: Path) -> float:
    """How long the program's thread ran after its exit handler (0 if it never saw it)."""
    exit_handler, thread_last_ran = struct.unpack("dd", times.read_bytes())
    return max(0.0, thread_last_ran - exit_handler) * 1000


def test_the_programs_threads_do_not_run_on_after_its_exit(build_dir: Path,
                                                           tmp_path: Path) -> None:
    """Natively, a thread still running when main returns ends with the process, a few
    microseconds after the exit handlers. The final capture waited 10 ms for such a thread to
    leave (a thread just joined may still be listed in /proc), and the thread ran on meanwhile:
    11 ms every time. The shortest of three runs must stay under 5 ms."""
    exe = compile_program("running_thread_at_exit.c", build_dir, "-O2")
    times = tmp_path / "times"
    native = _native(str(exe), str(times))
    assert (native.returncode, native.stdout) == (0, "main returns\n")
    ran_on = []
    for attempt in range(3):
        capture = tmp_path / f"run{attempt}.lt"
        done = leaktrace("run", "-o", str(capture), "--", str(exe), str(times))
        assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
        ran_on.append(_ran_on_after_exit_ms(times))
    assert min(ran_on) < 5, ran_on
    report = json_report(capture)
    assert report["summary"]["definitely_lost"]["bytes"] == 0


def test_an_on_demand_scan_while_the_loaders_lock_is_held(build_dir: Path, tmp_path: Path) -> None:
    """`leaktrace scan` of a process one of whose threads holds the loader's lock for good
    answers (it waited for that lock before) and finds the leak."""
    exe = compile_program("exit_in_loader_lock.c", build_dir, "-O2")
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "locked.lt"), "--",
                            str(exe), "60"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    pid = 0
    try:
        assert run.stdout is not None
        pid = int(run.stdout.readline().split()[0])
        scan = leaktrace("scan", "--format", "json", "--show", "all", str(pid), timeout=60)
        assert scan.returncode == 0, scan.stderr
        assert _loader_lock_leak(json.loads(scan.stdout)) == (77, 1)
    finally:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.kill()
        run.communicate(timeout=60)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize(("mode", "status"), [("thread-exit", 7),
                                              ("altstack-raise", -signal.SIGSEGV),
                                              ("altstack-return", -signal.SIGSEGV)])
def test_the_end_of_a_run_on_a_small_stack(build_dir: Path, tmp_path: Path, mode: str,
                                           status: int, opt: str) -> None:
    """exit() from a thread with a 32 KiB stack, and a fatal signal handled on a 16 KiB
    alternate stack (Python's faulthandler): the shim's scan and capture needed more stack
    than was left, and the program died of SIGSEGV with no capture. The leak is definitely
    lost, as valgrind says: below a handler that raised the signal again on the alternate
    stack, the thread's own stack is read from where the first signal found it."""
    exe = compile_program("small_stacks.c", build_dir, opt)
    native = subprocess.run([str(exe), mode], capture_output=True, timeout=60)
    assert native.returncode == status
    capture = tmp_path / f"{mode}.lt"
    run = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe), mode],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == status, run.stderr  # the same exit status, or the same death
    site = ("small_stacks.c", leak_marker_line("small_stacks.c", "small_stack"))
    records = [r for r in json_report(capture)["records"]
               if allocation_site(r, "small_stacks.c") == site]
    assert [(r["leak_kind"], r["bytes"], r["blocks"]) for r in records] == \
        [("definitely lost", 24, 1)]


def test_python_crashing_under_faulthandler_still_gives_a_report(tmp_path: Path) -> None:
    """faulthandler handles the crash on its own small alternate stack, puts the default
    back and raises the signal again; the shim's handler then runs on what is left of it."""
    capture = tmp_path / "faulthandler.lt"
    code = "import ctypes; ctypes.string_at(0)"
    native = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code],
                            capture_output=True, text=True, timeout=60)
    run = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--", sys.executable, "-X",
                          "faulthandler", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert native.returncode == run.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in run.stderr
    assert capture.exists() and json_report(capture)["summary"]["live"]["blocks"] > 0


def _sigwait_sites(report: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    found = []
    for marker in ("stale", "kept", "reading"):
        site = ("sigwait_thread.c", leak_marker_line("sigwait_thread.c", marker))
        found += [(marker, r["leak_kind"], r["bytes"], r["blocks"]) for r in report["records"]
                  if allocation_site(r, "sigwait_thread.c") == site]
    return found


SIGWAIT_KINDS = [("stale", "definitely lost", 500, 1), ("kept", "still reachable", 600, 1),
                 ("reading", "still reachable", 800, 1)]


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_a_thread_in_sigwait_is_never_sent_the_scan_signal(build_dir: Path, tmp_path: Path,
                                                           opt: str) -> None:
    """Every thread blocks every signal and one takes them with sigwait(): the exit scan sent
    it its signal, which sigwait() handed to the program ("signal thread got signal 63"), and
    then waited 2 s for it. The thread is not signalled now; its stack is read from where it
    waits in sigwait(), so the pointer left below that keeps nothing alive. A second thread
    waits in read() into a block only registers point to: the call's arguments are roots."""
    exe = compile_program("sigwait_thread.c", build_dir, opt)
    native = _native(str(exe))
    assert (native.returncode, native.stdout) == (0, "main done\n")
    capture = tmp_path / "sigwait.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "main done\n"), done.stderr
    report = json_report(capture)
    assert report["scan"]["threads_not_stopped"] == 2
    assert _sigwait_sites(report) == SIGWAIT_KINDS


def test_on_demand_scans_of_a_sigwait_program(build_dir: Path, tmp_path: Path) -> None:
    """`leaktrace scan` of the same design while it runs (the control thread scans; the main
    thread and the two others block the signal): three scans, the same kinds, and the
    program's signal thread sees only the SIGTERM sent to it at the end."""
    exe = compile_program("sigwait_thread.c", build_dir, "-O2")
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "serve.lt"), "--",
                            str(exe), "serve"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        pid = int(run.stdout.readline().split()[0])
        for _ in range(3):
            scan = leaktrace("scan", "--format", "json", "--show", "all", str(pid), timeout=60)
            assert scan.returncode == 0, scan.stderr
            report = json.loads(scan.stdout)
            assert report["scan"]["threads_not_stopped"] == 3
            assert _sigwait_sites(report) == SIGWAIT_KINDS
        os.kill(pid, signal.SIGTERM)
        out, err = run.communicate(timeout=30)
        assert (run.returncode, out) == (4, "signal thread got signal 15\n"), err
    finally:
        run.kill()
        run.communicate(timeout=60)


def test_a_thread_reading_a_signalfd_is_never_sent_the_scan_signal(build_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The same with a signalfd: the scan's signal, sent to the reading thread, was read from
    the signalfd as the program's own."""
    exe = compile_program("signalfd_thread.c", build_dir, "-O2")
    native = _native(str(exe))
    assert (native.returncode, native.stdout) == (0, "main done\n")
    capture = tmp_path / "signalfd.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "main done\n"), done.stderr
    site = ("signalfd_thread.c", leak_marker_line("signalfd_thread.c", "kept"))
    kept = [r for r in json_report(capture)["records"]
            if allocation_site(r, "signalfd_thread.c") == site]
    assert [(r["leak_kind"], r["bytes"]) for r in kept] == [("still reachable", 300)]



@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize("how", ["prctl", "syscall"])
def test_a_program_that_sandboxes_itself_runs_on_and_is_reported_up_to_its_filter(
        build_dir: Path, tmp_path: Path, how: str, opt: str) -> None:
    """The program installs a seccomp filter that kills it on any system call not listed
    (OpenSSH's privilege-separated child does; libseccomp installs it with syscall()), with a
    second thread allocating. The shim writes the capture just before the filter goes in and
    stops, so the program exits as it does natively; the leak before the filter is reported,
    the one after it is not seen."""
    exe = compile_program("sandboxed.c", build_dir, opt)
    native = _native(str(exe), how)
    assert (native.returncode, native.stdout) == (3, "sandboxed\n")
    run = run_traced(exe, how, work=tmp_path)
    assert (run.returncode, run.stdout) == (3, "sandboxed\n"), run.stderr
    assert "SIGSYS" not in run.stderr
    before = records_from(run.report, "sandboxed.c", "before")
    assert [(r["blocks"], r["bytes"]) for r in before] == [(1, 111)]
    assert run.report["summary"]["definitely_lost"] == {"bytes": 111, "blocks": 1}
    kept = records_from(run.report, "sandboxed.c", "kept")
    assert [(r["blocks"], r["bytes"]) for r in kept] == [(1, 333)]
    assert records_from(run.report, "sandboxed.c", "after") == []
    assert any("seccomp filter" in note for note in run.report["notes"])


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_probing_for_seccomp_does_not_stop_the_tracing(build_dir: Path, tmp_path: Path,
                                                       opt: str) -> None:
    """libseccomp probes the kernel with seccomp calls that install nothing (man-db's `man`
    does at start-up): tracing goes on, and the leak after the probes is found (it stopped at
    the first probe: "the program installed a seccomp filter here")."""
    exe = compile_program("sandboxed.c", build_dir, opt)
    native = _native(str(exe), "probe")
    assert (native.returncode, native.stdout) == (3, "probed\n")
    run = run_traced(exe, "probe", work=tmp_path)
    assert (run.returncode, run.stdout) == (3, "probed\n"), run.stderr
    after = records_from(run.report, "sandboxed.c", "after")
    assert [(r["blocks"], r["bytes"]) for r in after] == [(1, 222)]
    assert run.report["summary"]["definitely_lost"] == {"bytes": 333, "blocks": 2}
    assert not any("seccomp" in note for note in run.report["notes"])


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_a_child_execed_under_a_seccomp_filter_prints_nothing_of_ours(build_dir: Path,
                                                                     tmp_path: Path,
                                                                     opt: str) -> None:
    """man-db runs groff and its other helpers as children under a seccomp filter, which stays
    across exec: the helper's shim cannot make its control directory (mkdir fails with
    ENOSYS) and said so on the helper's stderr ("no control socket ... could not be created",
    on every `man` page). Now it says nothing there; the helper is traced, its leak found."""
    exe = compile_program("sandboxed_exec.c", build_dir, opt)
    native = _native(str(exe))
    assert (native.returncode, native.stdout, native.stderr) == (
        5, "helper ran under the filter\n", "")
    done = leaktrace("run", "--follow-children", "-o", str(tmp_path / "parent.lt"), "--",
                     str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (5, native.stdout), done.stderr
    assert "no control socket" not in done.stderr, done.stderr
    site = ("sandboxed_exec.c", leak_marker_line("sandboxed_exec.c", "helper"))
    helper_leaks = [r for capture in tmp_path.glob("*.lt") if capture.name != "parent.lt"
                    for r in json_report(capture)["records"]
                    if allocation_site(r, "sandboxed_exec.c") == site]
    assert [(r["leak_kind"], r["blocks"], r["bytes"]) for r in helper_leaks] == [
        ("definitely lost", 1, 123)], done.stderr


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_a_program_in_a_user_namespace_and_a_new_root_keeps_its_behaviour_and_report(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """unshare(CLONE_NEWUSER) is refused to a process with more than one thread: the shim's
    control thread ends for the call. After chroot into an empty directory, the capture goes
    into the file opened before it, and the scan reads /proc through a descriptor kept from
    before. Both leaks are found, with the program's path."""
    exe = compile_program("new_root.c", build_dir, opt)
    jail = tmp_path / "jail"
    jail.mkdir()
    native = _native(str(exe), str(jail))
    if native.returncode == 2:
        pytest.skip(f"this system refuses user namespaces or chroot: {native.stderr.strip()}")
    assert (native.returncode, native.stdout) == (0, "jailed\n")
    run = run_traced(exe, str(jail), work=tmp_path)
    assert (run.returncode, run.stdout) == (0, "jailed\n"), run.stderr
    for marker, size in (("before", 100), ("after", 200)):
        found = records_from(run.report, "new_root.c", marker)
        assert [(r["blocks"], r["bytes"]) for r in found] == [(1, size)]
    assert run.report["summary"]["definitely_lost"] == {"bytes": 300, "blocks": 2}
    assert run.report["program"] == str(exe)
    assert not any("scan" in note for note in run.report["notes"])


@pytest.mark.parametrize("ending", ["last", "exit"])
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_a_program_whose_main_thread_ends_first(build_dir: Path, tmp_path: Path, ending: str,
                                                 opt: str) -> None:
    # main calls pthread_exit; the process ends with its worker: glibc calls exit(0) when
    # the last thread returns (the shim's control thread must not count, or the process
    # never ends), or the worker calls exit (then /proc/self is the ended main thread's
    # view, empty: the capture must read the process through the worker).
    exe = compile_program("main_thread_exits.c", build_dir, opt)
    native = _native(str(exe), ending)
    assert (native.returncode, native.stdout) == (0, "main ends\nworker done\n")
    capture = tmp_path / "main.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe), ending],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    report = json_report(capture)
    assert Path(report["program"]).name == exe.name and report["command"][-1] == ending
    kinds = {marker: [(r["blocks"], r["bytes"], r["leak_kind"]) for r in report["records"]
                      if allocation_site(r, "main_thread_exits.c")
                      == ("main_thread_exits.c", leak_marker_line("main_thread_exits.c", marker))]
             for marker in ("main", "worker", "kept")}
    assert kinds == {"main": [(1, 77, "definitely lost")], "worker": [(1, 123, "definitely lost")],
                     "kept": [(1, 55, "still reachable")]}
    assert report["summary"]["definitely_lost"] == {"bytes": 200, "blocks": 2}


def test_a_program_keeps_its_handler_for_the_scans_signal(build_dir: Path, tmp_path: Path) -> None:
    # The scan signal (SIGRTMAX-1 by default) is the program's own here: a scan before it
    # installs its handler is reported as SIG_DFL, one after takes another signal, and the
    # program gets exactly its own signal, in its own handler.
    exe = compile_program("own_rt_signal.c", build_dir, "-O0")
    native = subprocess.run([str(exe)], input="go\ngo\n", capture_output=True, text=True,
                            timeout=60)
    expected = ["found the default", "installed", "received 1, handler mine"]
    assert native.returncode == 0 and native.stdout.splitlines()[1:] == expected
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(tmp_path / "ctl")}
    capture = tmp_path / "own.lt"
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe)], env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=tmp_path)
    try:
        assert run.stdin is not None and run.stdout is not None
        pid = int(run.stdout.readline().split()[0])
        lines = []
        for step in range(2):  # a scan before each step: the program's signal is free, then its
            scan = subprocess.run([*LEAKTRACE, "scan", str(pid)], env=env, capture_output=True,
                                  text=True, timeout=60, cwd=tmp_path)
            assert scan.returncode == 0, scan.stderr
            assert "threads stopped" in scan.stdout + scan.stderr or "definitely" in scan.stdout
            run.stdin.write("go\n")
            run.stdin.flush()
            lines.append(run.stdout.readline().rstrip("\n"))
            if step == 0:
                lines.append(run.stdout.readline().rstrip("\n"))
        assert lines == expected
        assert run.wait(60) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    report = json_report(capture)
    [record] = records_from(report, "own_rt_signal.c", "own_rt")
    assert (record["blocks"], record["bytes"]) == (1, 48)
    assert report["summary"]["definitely_lost"] == {"bytes": 48, "blocks": 1}  # scanned at exit


@pytest.mark.parametrize(("how", "status"), [("_exit", 3), ("_Exit", 4), ("quick_exit", 5),
                                             ("exit", 6)])
def test_unflushed_stdio_stays_as_the_way_out_leaves_it(build_dir: Path, tmp_path: Path,
                                                         how: str, status: int) -> None:
    """_exit, _Exit and quick_exit throw buffered stdio output away; exit writes it. The final
    capture released glibc's buffers with __libc_freeres, which flushes them: the output and
    the file were written under leaktrace (a forked daemon printed its parent's lines twice)."""
    exe = compile_program("unflushed_exit.c", build_dir, "-O2")
    native_file, traced_file = tmp_path / "native.txt", tmp_path / "traced.txt"
    native = subprocess.run([str(exe), how, str(native_file)], capture_output=True, text=True,
                            check=False)
    traced = subprocess.run([*LEAKTRACE, "run", "--report-file", os.devnull, "-o",
                             str(tmp_path / "c.lt"), "--", str(exe), how, str(traced_file)],
                            capture_output=True, text=True, check=False)
    assert (native.returncode, traced.returncode) == (status, status), traced.stderr
    assert traced.stdout == native.stdout
    assert traced_file.read_text() == native_file.read_text()
    assert (tmp_path / "c.lt").exists()


def test_started_with_sigchld_ignored_the_status_is_the_programs(tmp_path: Path) -> None:
    """A parent that ignores SIGCHLD passes that on through exec: the launcher's children were
    then reaped by the kernel and wait() found none (the program's 42 came out as 0). The
    program still inherits SIGCHLD ignored."""
    script = ("import os, signal, sys\n"
              "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
              "os.execvp(sys.argv[1], sys.argv[1:])\n")
    program = ["sh", "-c", "grep SigIgn /proc/self/status >&2; exit 42"]
    done = subprocess.run([sys.executable, "-c", script, *LEAKTRACE, "run", "-o",
                           str(tmp_path / "c.lt"), "--report-file", os.devnull, "--",
                           "grep", "SigIgn", "/proc/self/status"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    ignored = int(done.stdout.split()[1], 16)
    assert ignored >> (signal.SIGCHLD - 1) & 1
    status = subprocess.run([sys.executable, "-c", script, *LEAKTRACE, "run", "-o",
                             str(tmp_path / "d.lt"), "--report-file", os.devnull, "--",
                             *program], capture_output=True, text=True, check=False)
    assert status.returncode == 42, status.stderr


@pytest.mark.parametrize("ending, status", [("exit 5", 5), ("kill -TERM $$", -signal.SIGTERM)])
def test_a_report_nobody_reads_keeps_the_programs_ending(tmp_path: Path, ending: str,
                                                         status: int) -> None:
    """`leaktrace run PROG 2>&1 | true`: the reader is gone before the report comes; the
    report is lost, not the program's status (it was 141, Python's broken pipe)."""
    reader_gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader_gone.wait()
    assert reader_gone.stdin is not None
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "unread.lt"), "--",
                           "sh", "-c", f"sleep 0.2; {ending}"], stdout=reader_gone.stdin,
                          stderr=reader_gone.stdin, timeout=120, check=False)
    assert done.returncode == status


@pytest.mark.parametrize("where", ["closed", "full"])
def test_a_report_that_cannot_be_written_keeps_the_programs_status(tmp_path: Path,
                                                                   where: str) -> None:
    """`2>&-` and `2>/dev/full`: the report is lost, not the program's status (it was 1)."""
    stderr: Any = subprocess.DEVNULL
    if where == "full":
        stderr = open("/dev/full", "w")  # noqa: SIM115
    command = [*LEAKTRACE, "run", "-o", str(tmp_path / "lost.lt"), "--", "sh", "-c",
               "echo out; exit 7"]
    # Closed: the program starts with descriptor 2 closed too, as it would under the shell.
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120,
                          check=False, preexec_fn=(lambda: os.close(2)) if where == "closed"
                          else None)
    if where == "full":
        stderr.close()
    assert (done.returncode, done.stdout) == (7, "out\n")
    assert (tmp_path / "lost.lt").exists()


def test_a_report_nobody_reads_still_fails_the_leak_gate(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "leaks_one.c",
                         "#include <stdlib.h>\nvoid *volatile sink;\n"
                         "int main(void) { sink = malloc(42); sink = 0; return 0; }\n", "-O0")
    reader_gone = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader_gone.wait()
    assert reader_gone.stdin is not None
    done = subprocess.run([*LEAKTRACE, "run", "--fail-on-leak", "0", "--leak-exit-code", "7",
                           "-o", str(tmp_path / "gate.lt"), "--", str(exe)],
                          stdout=reader_gone.stdin, stderr=reader_gone.stdin, timeout=120,
                          check=False)
    assert done.returncode == 7


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize(("how", "status"), [("exit-group", 3), ("exit", 4), ("raw", 5),
                                             ("raw-threads", 0), ("exit-threads", 7)])
def test_a_program_that_ends_by_the_exit_system_call(build_dir: Path, tmp_path: Path, how: str,
                                                     status: int, opt: str) -> None:
    """syscall(SYS_exit_group) ran no exit path of the shim's: no capture. The exit system call
    of the program's last thread (glibc does not count that thread out) left the process
    running with the shim's control thread: it never ended. Now the capture is written and the
    process ends with its last thread, with its status."""
    exe = compile_program("exit_system_call.c", build_dir, opt)
    native = _native(str(exe), how)
    threads = how.endswith("threads")
    lines = "main ends\nworker done\n" if threads else "main ends\n"
    assert (native.returncode, native.stdout) == (status, lines)
    capture = tmp_path / "c.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--report-file", os.devnull,
                           "--", str(exe), how], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (status, lines), done.stderr
    report = json_report(capture)
    kinds = {marker: [(r["blocks"], r["bytes"], r["leak_kind"]) for r in report["records"]
                      if allocation_site(r, "exit_system_call.c")
                      == ("exit_system_call.c", leak_marker_line("exit_system_call.c", marker))]
             for marker in ("main", "kept", "worker")}
    assert kinds == {"main": [(1, 100, "definitely lost")], "kept": [(1, 55, "still reachable")],
                     "worker": [(1, 123, "definitely lost")] if threads else []}


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_stack_overflow_still_gives_a_report(build_dir: Path, tmp_path: Path, opt: str,
                                               where: str) -> None:
    """Runaway recursion leaves no room on the stack for the shim's handler: the kernel killed
    the process at once, and there was no capture. Each thread now has an alternate signal
    stack of the shim's (the main thread from start-up, another from its first allocation);
    the death is the same, and valgrind's 200 bytes definitely lost are found."""
    exe = compile_program("stack_overflow.c", build_dir, opt)
    args = [] if where == "main" else ["-", "thread"]
    native = _native(str(exe), *args)
    assert (native.returncode, native.stdout) == (-signal.SIGSEGV, "recursing\n")
    capture = tmp_path / "c.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--report-file", os.devnull,
                           "--", str(exe), *args], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (-signal.SIGSEGV, native.stdout), done.stderr
    report = json_report(capture)
    assert report["counters"]["fatal_signal"] == signal.SIGSEGV
    kinds = sorted((r["blocks"], r["bytes"], r["leak_kind"]) for r in report["records"]
                   if allocation_site(r, "stack_overflow.c")
                   == ("stack_overflow.c", leak_marker_line("stack_overflow.c", "overflow")))
    assert kinds == [(1, 100, "still reachable"), (2, 200, "definitely lost")]


def test_a_stack_overflow_in_a_thread_gives_a_report_in_sampling_mode(build_dir: Path,
                                                                     tmp_path: Path) -> None:
    """In sampling mode a thread may never have an allocation recorded (none of the 100-byte
    blocks here is likely to be sampled at a 1 MiB mean): it gets its alternate signal stack
    at its first allocation all the same."""
    exe = compile_program("stack_overflow.c", build_dir, "-O2")
    capture = tmp_path / "c.lt"
    done = subprocess.run([*LEAKTRACE, "run", "--sample", "1048576", "-o", str(capture),
                           "--report-file", os.devnull, "--", str(exe), "-", "thread"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (-signal.SIGSEGV, "recursing\n"), done.stderr
    assert json_report(capture)["counters"]["fatal_signal"] == signal.SIGSEGV


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_program_sees_no_alternate_signal_stack_of_the_shims(build_dir: Path, tmp_path: Path,
                                                                 where: str) -> None:
    exe = compile_program("stack_overflow.c", build_dir, "-O0")
    args = ["altstack"] + ([] if where == "main" else ["thread"])
    native = _native(str(exe), *args)
    assert native.returncode == 0
    assert native.stdout.splitlines()[1:] == ["before flags 2 size 0", "replaced flags 2 size 0",
                                              "after flags 0 size 65536", "own 1"]
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "c.lt"), "--report-file",
                           os.devnull, "--", str(exe), *args], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr


@pytest.mark.parametrize("options", [(), ("--follow-children",), ("--sample", "4096")],
                         ids=["plain", "follow-children", "sample"])
def test_the_heap_statistics_are_the_programs_own(build_dir: Path, tmp_path: Path,
                                                  options: tuple[str, ...]) -> None:
    """glibc's pthread_create allocates the shim's thread's vector (DTV) with calloc, which
    went into the program's heap: mallinfo2 said 304 bytes more in use, and every later block
    lay elsewhere than natively; in sampling mode two chunks the shim freed at start-up to
    learn glibc's thread-cache mark stayed in that cache (80 bytes more). The program and its
    forked child (traced under --follow-children, with a thread of the shim's of its own) now
    see their native figures."""
    exe = compile_program("heap_statistics.c", build_dir, "-O0")
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    traced = leaktrace("run", "-o", str(tmp_path / "h.lt"), *options, "--", str(exe),
                       cwd=tmp_path)
    assert (traced.returncode, traced.stdout) == (0, native.stdout), traced.stderr
    if options == ("--follow-children",):
        assert len(list(tmp_path.glob("leaktrace-heap_statistics-O0.*.lt"))) == 1, traced.stderr
