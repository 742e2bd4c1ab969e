"""Inputs that used to hang, take the memory, give a traceback or a wrong message: FIFOs and
devices, totals past 2^63, names that are not UTF-8, Ctrl-C at start-up, an empty mtrace log,
a program that exits 139, a capture the shim cannot write, programs whose allocations the
shim can never see. Each gets one true line."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from companion_helpers import compile_c
from leakharness import LEAKTRACE, assert_one_line_error, leaktrace

from leaktrace.capture.reader import BlockRow, Module, ProcessInfo, Stack
from leaktrace.capture.writer import encode_capture, make_header

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "capture-v2.lt"
READING_COMMANDS = [
    ("report", "{}"), ("report", "--format", "json", "{}"), ("dump", "{}"), ("growth", "{}"),
    ("mtrace", "{}"), ("report", "--suppressions", "{}", str(CAPTURE)),
]


def _commands(path: Path) -> list[list[str]]:
    return [[a.format(path) for a in command] for command in READING_COMMANDS]


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/urandom"])
def test_special_files_are_refused_at_once(tmp_path: Path, special: str) -> None:
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    kind = "FIFO" if special == "fifo" else "character device"
    for command in _commands(path):
        done = leaktrace(*command, timeout=30)
        assert_one_line_error(done, str(path), kind, "not a regular file")


def test_module_path_naming_a_fifo_does_not_block_the_report(tmp_path: Path) -> None:
    fifo = tmp_path / "libfifo.so"
    os.mkfifo(fifo)
    stack = Stack(1, 1, 16, 0, 0, 1, 16, (0x10010,))
    capture = tmp_path / "fifo-module.lt"
    capture.write_bytes(encode_capture(
        make_header(5), process=ProcessInfo(1, str(fifo), [str(fifo)], "/"),
        modules=[Module(0x10000, 0x10000, 0x20000, False, b"", str(fifo))], stacks=[stack],
        blocks=[BlockRow(0x1000, 16, 1, 1, 0)], counters={}))
    done = leaktrace("report", str(capture), "--show", "all", timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"{fifo} is not a regular file" in done.stdout
    assert "16 bytes in 1 blocks" in done.stdout or "1 block" in done.stdout


@pytest.mark.parametrize("field", ["alloc_bytes", "live_bytes", "alloc_count"])
def test_totals_past_2_63_are_a_corrupt_capture(tmp_path: Path, field: str) -> None:
    values = {"alloc_count": 1, "alloc_bytes": 16, "live_bytes": 16, field: 1 << 63}
    stack = Stack(1, values["alloc_count"], values["alloc_bytes"], 0, 0, 1,
                  values["live_bytes"], (0x10010,))
    capture = tmp_path / "huge.lt"
    capture.write_bytes(encode_capture(make_header(5), stacks=[stack],
                                       blocks=[BlockRow(0x1000, 16, 1, 1, 0)], counters={}))
    for command in (["report", str(capture)], ["growth", str(capture)], ["dump", str(capture)]):
        assert_one_line_error(leaktrace(*command), "corrupt", "2^63")


def test_block_larger_than_an_address_space_is_corrupt(tmp_path: Path) -> None:
    capture = tmp_path / "huge-block.lt"
    capture.write_bytes(encode_capture(make_header(5), stacks=[],
                                       blocks=[BlockRow(0x1000, (1 << 64) - 1, 0, 1, 0)],
                                       counters={}))
    assert_one_line_error(leaktrace("report", str(capture)), "corrupt", "larger than any")


def test_a_capture_without_stacks_is_reported(tmp_path: Path) -> None:
    """Every block without a backtrace (stack id 0) and no STACKS entries: a valid capture
    (the reader also skips an unknown section tag, as a renamed STACKS would be). Each report
    and command reads it; it stopped at an IndexError."""
    capture = tmp_path / "no-stacks.lt"
    capture.write_bytes(encode_capture(make_header(5), stacks=[],
                                       blocks=[BlockRow(0x1000, 100, 0, 1, 0),
                                               BlockRow(0x2000, 28, 0, 1, 0)], counters={}))
    done = leaktrace("report", str(capture), "--show", "all")
    assert done.returncode == 0, done.stderr
    assert "128 bytes in 2 blocks" in done.stdout and "no backtrace" in done.stdout
    for command in (["report", "--format", "json"], ["report", "--format", "folded"],
                    ["report", "--format", "speedscope"], ["report", "--top", "0"],
                    ["report", "--format", "pprof", "-o", str(tmp_path / "p.pb")],
                    ["report", "--format", "html", "-o", str(tmp_path / "p.html")],
                    ["diff", str(capture)], ["merge"], ["growth"]):
        done = leaktrace(*command, str(capture))
        assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr)


def _under_address_limit(*args: str, limit: int = 3 << 30) -> subprocess.CompletedProcess[str]:
    """leaktrace with RLIMIT_AS set: a command that reads a whole 10 GiB file fails."""
    import resource

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([*LEAKTRACE, *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=lower)


def test_only_the_capture_itself_is_read(tmp_path: Path) -> None:
    """A 10 GiB file (sparse: no disk) that does not start like a capture, and a capture
    followed by 10 GiB of zeros: dump and growth read the first whole (10.5 GB of memory,
    20 s), every command the second."""
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(10 << 30)
    for command in ("dump", "growth", "report"):
        assert_one_line_error(_under_address_limit(command, str(sparse)), "not a leaktrace capture")
    padded = tmp_path / "padded.lt"
    padded.write_bytes(CAPTURE.read_bytes())
    with open(padded, "r+b") as f:
        f.truncate(10 << 30)
    for command in (["report"], ["dump"], ["growth"], ["merge"], ["diff", str(CAPTURE)]):
        done = _under_address_limit(*command, str(padded))
        assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr)


def test_top_zero_shows_the_summary_only() -> None:
    """--top 0 (no record shown) stopped at max() of an empty list, and the leak gate with it."""
    done = leaktrace("report", str(CAPTURE), "--top", "0", "--fail-on-leak")
    assert done.returncode == 99, done.stderr
    assert "LEAK SUMMARY:" in done.stdout and "Leaked bytes per frame" not in done.stdout


def test_oversized_suppression_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.supp"
    with open(huge, "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GB that cost no disk
    assert_one_line_error(leaktrace("report", "--suppressions", str(huge), str(CAPTURE)),
                          "too large for a suppression file")


def test_empty_mtrace_log_says_nothing_was_traced(tmp_path: Path) -> None:
    empty = tmp_path / "mtrace.log"
    empty.write_bytes(b"")
    assert_one_line_error(leaktrace("mtrace", str(empty)), "is empty", "nothing was traced")
    empty.write_bytes(b"\n\n")
    assert_one_line_error(leaktrace("mtrace", str(empty)), "is empty")


LEAK_AND_EXIT = r"""
#include <stdlib.h>
void * volatile sink;
__attribute__((noinline)) void lose(void) { sink = malloc(77); sink = 0; }
int main(int argc, char **argv) { lose(); return argc > 1 ? atoi(argv[1]) : 3; }
"""


def test_program_name_that_is_not_utf8(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, LEAK_AND_EXIT, "plain")
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/pr\xffog"))
    binary.rename(odd)
    env = dict(os.environ, LC_ALL="C.UTF-8")
    done = subprocess.run([*LEAKTRACE, "run", "--format", "json", "--report-file", "-",
                           "--", str(odd)], capture_output=True, cwd=tmp_path, env=env,
                          timeout=120, check=False)
    assert done.returncode == 3, done.stderr  # the program's own exit code
    assert b"Traceback" not in done.stderr
    import json

    report = json.loads(done.stdout)
    assert report["summary"]["definitely_lost"] == {"bytes": 77, "blocks": 1}
    assert b"pr\xffog" in os.fsencode(report["program"])
    (capture,) = [p for p in tmp_path.iterdir() if p.name.endswith(".lt")]
    assert b"\xff" in os.fsencode(capture.name)
    for command in (["report", str(capture)], ["dump", str(capture)],
                    ["growth", str(capture)], ["report", "--format", "json", str(capture)]):
        result = subprocess.run([*LEAKTRACE, *command], capture_output=True, env=env,
                                timeout=120, check=False)
        assert result.returncode == 0, (command, result.stderr)
        assert b"pr\xffog" in result.stdout or b"pr\\udcffog" in result.stdout, command
    # Written to files, the name's bytes come back as they were (it was a UnicodeEncodeError,
    # and `run` lost the program's exit code with it).
    for output_format, name in (("text", "r.txt"), ("html", "r.html"), ("json", "r.json")):
        result = subprocess.run([*LEAKTRACE, "report", "--format", output_format, "-o", name,
                                 str(capture)], capture_output=True, env=env, cwd=tmp_path,
                                timeout=120, check=False)
        assert result.returncode == 0, (output_format, result.stderr)
        written = (tmp_path / name).read_bytes()
        assert b"pr\xffog" in written or b"pr\\udcffog" in written, output_format
    done = subprocess.run([*LEAKTRACE, "run", "--report-file", "run.txt", "--", str(odd)],
                          capture_output=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert b"pr\xffog" in (tmp_path / "run.txt").read_bytes()


def test_mtrace_log_with_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    log = tmp_path / "mtrace.log"
    log.write_bytes(b"= Start\n@ ./pr\xffog:[0x11a7] + 0x1000 0x10\n"
                    b"# 0x5555 /tmp/pr\xffog+0x11a7\n= End\n")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    for fmt in ("mtrace", "text", "json"):
        done = subprocess.run([*LEAKTRACE, "mtrace", "--format", fmt, str(log)],
                              capture_output=True, env=env, timeout=60, check=False)
        assert done.returncode == 0, done.stderr  # leaks are a failure only with --fail-on-leak
        assert b"Traceback" not in done.stderr
        if fmt == "mtrace":  # glibc's table: the one block, by address and size
            assert b"0x0000000000001000     0x10  at " in done.stdout, done.stdout
        elif fmt == "text":  # the module name's bytes come back as they were
            assert b"[pr\xffog]" in done.stdout, done.stdout
        else:  # JSON escapes them as Python's surrogates
            assert b'"module": "/tmp/pr\\udcffog"' in done.stdout, done.stdout


# Python's own start-up (before any leaktrace code runs: the interpreter, `site`, the
# console script's `import re`) takes the first ~50 ms; a Ctrl-C there is Python's, not ours.
INTERPRETER_START_S = 0.15


def test_ctrl_c_during_start_up_is_one_line(tmp_path: Path) -> None:
    script = shutil.which("leaktrace", path=os.path.dirname(sys.executable))
    command = [script] if script else [*LEAKTRACE]
    rng = random.Random(13)
    tracebacks = []
    for trial in range(20):
        child = subprocess.Popen([*command, "report", str(CAPTURE)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        time.sleep(INTERPRETER_START_S + rng.uniform(0, 0.5))
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
        if b"Traceback" in err and b"/leaktrace/" in err:  # not only Python's own start-up
            tracebacks.append((trial, err.decode(errors="replace")[-400:]))
        elif b"Traceback" in err:
            continue  # interrupted in the interpreter's start-up, before any leaktrace code
        elif child.returncode == 130:
            assert err.strip().splitlines()[-1] == b"leaktrace: interrupted", err
        else:  # done before the signal, or ended by it during the interpreter's exit
            assert child.returncode in (0, -signal.SIGINT), (child.returncode, err)
    assert not tracebacks, tracebacks


LOST_IN_A_CALLBACK = """
import signal, sys, time, weakref
import leaktrace.entry
sys.argv = ["leaktrace", "--version"]
try:
    leaktrace.entry.main()
except SystemExit:
    pass
signal.signal(signal.SIGINT, signal.default_int_handler)  # as while a command runs
class Thing:
    pass
def landed_here(_ref):
    raise KeyboardInterrupt  # what Python's SIGINT handler raises wherever it lands
thing = Thing()
watcher = weakref.ref(thing, landed_here)
try:
    del thing
    time.sleep(0.5)
    print("went on")
except KeyboardInterrupt:
    print("stopped")
"""


def test_ctrl_c_landing_in_a_callback_still_stops_the_command() -> None:
    """Python prints a KeyboardInterrupt raised in a weak reference's callback (or a __del__,
    an import lock's cleanup) as "Exception ignored" and goes on; leaktrace raises it again."""
    done = subprocess.run([sys.executable, "-c", LOST_IN_A_CALLBACK], capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "stopped", done
    assert "Exception ignored" not in done.stderr, done.stderr


def test_exit_139_is_not_a_segfault(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, LEAK_AND_EXIT, "exits")
    done = leaktrace("run", "--", str(binary), "139", cwd=tmp_path)
    assert done.returncode == 139
    assert "killed" not in done.stderr and "SIGSEGV" not in done.stderr, done.stderr
    assert "capture saved to" in done.stderr


SELF_KILL = r"""
#include <signal.h>
#include <stdlib.h>
void * volatile sink;
int main(void) { sink = malloc(10); raise(SIGKILL); return 0; }
"""


def test_killed_by_sigkill_says_why_there_is_no_capture(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, SELF_KILL, "selfkill")
    done = leaktrace("run", "--", str(binary), cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL  # leaktrace ends the way the program did
    assert "was killed by SIGKILL" in done.stderr
    assert "which no process can catch" in done.stderr
    assert "may have crashed" not in done.stderr


@pytest.mark.parametrize(("output", "filesystem"), [("/proc/leaktrace-test.lt", "proc"),
                                                    ("/proc/self/x.lt", "proc"),
                                                    ("/sys/leaktrace-test.lt", "sysfs")])
def test_output_on_a_kernel_filesystem_is_refused_before_the_run(tmp_path: Path, output: str,
                                                                 filesystem: str) -> None:
    binary = compile_c(tmp_path, LEAK_AND_EXIT, "exits")
    done = leaktrace("run", "-o", output, "--", str(binary), "0", cwd=tmp_path)
    assert_one_line_error(done, f"is on the kernel's {filesystem} filesystem",
                          "use -o FILE on a real disk")
    assert done.stdout == ""  # the program never ran


def test_leaktrace_dir_is_where_run_writes_captures(tmp_path: Path) -> None:
    """As for the shim alone (it was the current directory whatever the variable said), and
    a directory that cannot hold them is refused before the run."""
    binary = compile_c(tmp_path, LEAK_AND_EXIT, "exits")
    chosen = tmp_path / "captures"
    chosen.mkdir()
    env = {**os.environ, "LEAKTRACE_DIR": str(chosen)}
    done = subprocess.run([*LEAKTRACE, "run", "--", str(binary), "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in chosen.glob("leaktrace-exits.*.lt")], done.stderr
    assert not list(tmp_path.glob("*.lt"))
    env["LEAKTRACE_DIR"] = "/proc/leaktrace-test"
    done = subprocess.run([*LEAKTRACE, "run", "--", str(binary), "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, "LEAKTRACE_DIR /proc/leaktrace-test does not exist")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_names_the_reason(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, LEAK_AND_EXIT, "exits")
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(full)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(full / "filler", "wb") as f, pytest.raises(OSError):
            f.write(b"\0" * (64 << 10))
            f.flush()
        done = leaktrace("run", "-o", str(full / "x.lt"), "--", str(binary), "0", cwd=tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
    assert done.returncode == 2
    assert f"the shim could not write {full}/x.lt: No space left on device" in done.stderr


def test_asan_program_is_refused(tmp_path: Path) -> None:
    try:
        binary = compile_c(tmp_path, LEAK_AND_EXIT, "asan", "-fsanitize=address")
    except subprocess.CalledProcessError:
        pytest.skip("gcc cannot build with -fsanitize=address here (libasan missing)")
    assert_one_line_error(leaktrace("run", "--", str(binary)), "AddressSanitizer",
                          "replaces malloc")
