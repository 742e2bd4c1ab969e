"""`leaktrace attach` / `leaktrace detach` on live processes: a multi-threaded server under
load from the test (exact leak counts for the collection window, correct answers during and
after, its own exit status at the end), 50 attach/detach cycles, Ctrl-C at any moment, a
real program (python3 -m http.server), and the one-line errors. Nothing measures time."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from attach_harness import AttachRun, Load, Server, attach_env
from leakharness import (
    EVERY_RECORD,
    LEAKTRACE,
    PROGRAMS,
    allocation_site,
    assert_one_line_error,
    compile_program,
    json_report,
    marker_line,
    records_from,
)
from native_programs import compile_source

from leaktrace.attach.preflight import check_attachable
from leaktrace.attach.session import (
    AttachSettings,
    SessionEnded,
    attach,
    collecting_status,
    detach,
)
from leaktrace.control.client import ControlError, send_command
from leaktrace.shim_library import find_shim_library

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.uname().machine != "x86_64",
    reason="leaktrace attach works on x86-64 Linux only")

SOURCE = "attach_server.c"
LEAK_SIZE = 64

# Without --scan the capture written at detach has no leak kinds: --show does not filter.
ATTACH_EVERY_RECORD = ("--no-default-suppressions",)


@pytest.fixture
def server(build_dir: Path, tmp_path: Path) -> Iterator[Server]:
    started = Server.start(build_dir, tmp_path)
    yield started
    started.kill()


def leaktrace(*args: str, env: dict[str, str], cwd: Path,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LEAKTRACE, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def leaked_blocks(report: dict[str, object]) -> tuple[int, int]:
    """(blocks, bytes) still live from the server's leaking line."""
    records = records_from(report, SOURCE, "request")  # type: ignore[arg-type]
    return sum(r["blocks"] for r in records), sum(r["bytes"] for r in records)




# --- the collection window -------------------------------------------------------------------

def test_attach_reports_only_the_window(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    server.leak(7)  # before attach: never in the report
    run = AttachRun(server.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(25)
    server.check_answers()
    run.interrupt()  # Ctrl-C ends the window
    assert run.finish() == 0, run.error_text
    server.leak(5)  # after detach: not in the report either
    load.stop()

    report = json.loads(run.stdout)
    assert leaked_blocks(report) == (25, 25 * LEAK_SIZE)
    assert "Traceback" not in run.error_text
    assert re.search(r"leaktrace: collected from \d\d:\d\d:\d\d\.\d{3} to \d\d:\d\d:\d\d\.\d{3}",
                     run.error_text), run.error_text
    capture = re.search(r"capture saved to (\S+)", run.error_text)
    assert capture, run.error_text
    # The text report names the leaking line.
    text = leaktrace("report", capture[1], *EVERY_RECORD, env=env, cwd=tmp_path)
    assert f"{SOURCE}:{marker_line(SOURCE, 'request')}" in text.stdout, text.stdout
    assert server.quit() == (7, "served 37 leaks\n")


def test_attach_with_scan_reports_leak_kinds(server: Server, tmp_path: Path) -> None:
    """`attach --scan`: the capture written at detach has a reachability scan, so the report
    says what valgrind would of the window's blocks: the leaked ones definitely lost. The
    server, whose threads the scan stopped, goes on serving (under load throughout)."""
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    run = AttachRun(server.pid, "--scan", "--format", "json", "--show", "all",
                    *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(6)
    server.check_answers()
    run.interrupt()
    assert run.finish() == 0, run.error_text
    report = json.loads(run.stdout)
    site = (SOURCE, marker_line(SOURCE, "request"))
    leaks = [r for r in report["records"] if allocation_site(r, SOURCE) == site]
    assert [(r["leak_kind"], r["blocks"], r["bytes"]) for r in leaks] == \
        [("definitely lost", 6, 6 * LEAK_SIZE)]
    assert report["summary"]["definitely_lost"] == {"bytes": 6 * LEAK_SIZE, "blocks": 6}
    assert "no leak kinds" not in run.error_text
    server.check_answers()  # the threads the scan stopped go on serving
    # Detached without the scan: every live byte counts, no kinds.
    run = AttachRun(server.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(2)
    run.interrupt()
    assert run.finish() == 0, run.error_text
    plain = json.loads(run.stdout)
    assert [(r["leak_kind"], r["blocks"]) for r in plain["records"]
            if allocation_site(r, SOURCE) == site] == [(None, 2)]
    assert "no leak kinds; --scan runs the reachability scan" in run.error_text
    load.stop()
    assert server.quit() == (7, "served 8 leaks\n")


def test_attach_with_duration_and_output(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    output = tmp_path / "window.lt"
    run = AttachRun(server.pid, "--duration", "600", "-o", str(output), "--verbose",
                    "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(3)
    run.interrupt(signal.SIGTERM)  # SIGTERM ends the window like Ctrl-C
    assert run.finish() == 0, run.error_text
    assert output.exists()
    assert leaked_blocks(json.loads(run.stdout)) == (3, 3 * LEAK_SIZE)
    assert "attach latency:" in run.error_text  # --verbose
    # A short --duration ends by itself.
    done = leaktrace("attach", str(server.pid), "--duration", "0.2", "--format", "json",
                     *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert leaked_blocks(json.loads(done.stdout)) == (0, 0)
    assert server.quit()[0] == 7


def test_attach_max_depth_cuts_the_windows_backtraces(server: Server, tmp_path: Path) -> None:
    """`attach --max-depth N` (in its --help; the user guide listed it for run only): the
    window's backtraces keep their N innermost frames and are counted as cut."""
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, "--max-depth", "2", "--format", "json", *ATTACH_EVERY_RECORD,
                    env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(4)
    run.interrupt()
    assert run.finish() == 0, run.error_text
    report = json.loads(run.stdout)
    assert report["counters"]["max_depth"] == 2
    leaks = records_from(report, SOURCE, "request")  # type: ignore[arg-type]
    assert sum(r["blocks"] for r in leaks) == 4
    # Two return addresses at most (an address with inlined calls is several frames).
    assert max(len({f["address"] for f in r["frames"]}) for r in report["records"]) == 2
    assert report["counters"]["truncated_stacks"] >= 4
    assert server.quit()[0] == 7


@pytest.mark.parametrize("scan", [False, True])
def test_detach_after_leaktrace_was_killed(server: Server, tmp_path: Path, scan: bool) -> None:
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, env=env, cwd=tmp_path)
    run.wait_attached()
    run.interrupt(signal.SIGKILL)
    run.finish()
    server.leak(10)  # still collecting without its leaktrace
    done = leaktrace("detach", str(server.pid), "--format", "json", *ATTACH_EVERY_RECORD,
                     *(("--scan", "--fail-on-leak") if scan else ()), env=env, cwd=tmp_path)
    # --fail-on-leak after a scan counts the definitely and possibly lost bytes: 10 blocks.
    assert done.returncode == (99 if scan else 0), done.stderr
    report = json.loads(done.stdout)
    assert leaked_blocks(report) == (10, 10 * LEAK_SIZE)
    kind = "definitely lost" if scan else None
    assert report["summary"]["definitely_lost"] == ({"bytes": 10 * LEAK_SIZE, "blocks": 10}
                                                    if scan else None)
    assert {r["leak_kind"] for r in report["records"]
            if allocation_site(r, SOURCE) == (SOURCE, marker_line(SOURCE, "request"))} == {kind}
    assert "leaktrace: collected from" in done.stderr
    again = leaktrace("detach", str(server.pid), env=env, cwd=tmp_path)
    assert_one_line_error(again, "not attached")
    server.check_answers()
    assert server.quit()[0] == 7


def test_target_exits_while_attached(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(4)
    assert server.quit()[0] == 7
    assert run.finish() == 0, run.error_text
    assert "exited during the collection window" in run.error_text
    assert leaked_blocks(json.loads(run.stdout)) == (4, 4 * LEAK_SIZE)


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def reserved_outside_arenas_kib(pid: int) -> int:
    """The process's address space (every mapping, as VmSize counts it) less glibc's malloc
    arenas (64 MiB-aligned anonymous heaps, recognised as the shim's scan does), from one
    read of its map: the arenas are the program's own, made when its threads contend for
    malloc (an injected call traced system call by system call is slow, so that can happen
    during an attach)."""
    mappings = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        mappings.append((start, end, len(fields) == 5))  # 5 fields: anonymous
    heap = 64 << 20
    bases = {start for start, _end, anonymous in mappings if anonymous and start % heap == 0}
    return sum(end - start for start, end, anonymous in mappings
               if not (anonymous and start - start % heap in bases
                       and end <= start - start % heap + heap)) // 1024


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.01)


def test_fifty_attach_detach_cycles(server: Server, tmp_path: Path) -> None:
    """Through the library (one Python process) so that 50 cycles stay quick."""
    control_dir = str(tmp_path / "ctl")
    shim = str(find_shim_library())
    settings = AttachSettings(control_dir=control_dir, capture_dir=str(tmp_path))
    load = Load(server.port)
    threads_before = thread_count(server.pid)
    reserved_before = reserved_outside_arenas_kib(server.pid)
    captures = []
    for cycle in range(50):
        memory = check_attachable(server.pid, shim, "/tmp")
        attach(server.pid, shim, settings, memory, "/tmp", lambda _message: None)
        assert thread_count(server.pid) == threads_before + 1  # the session's control thread
        if cycle % 10 == 0:
            server.leak(2)
        detached = detach(server.pid, control_dir)
        captures.append(detached.capture)
        # Nothing of the session stays: its thread ends after answering, its socket is gone,
        # its tables are unmapped.
        assert detached.tables_released
        wait_until(lambda: thread_count(server.pid) == threads_before, "the control thread ends")
        assert collecting_status(server.pid, control_dir) is None
        assert not Path(control_dir, f"{server.pid}.sock").exists()
    load.stop()
    # What stays: the shim's own mapping, its thread registry, unwind-rule cache and the
    # last session's control-thread stack (docs/attach.md, "After detach"); not its tables,
    # which reserve over 300 MiB while attached.
    assert reserved_outside_arenas_kib(server.pid) - reserved_before < 4096
    assert len(set(captures)) == 50  # one capture per window, none overwritten
    assert leaked_blocks(json_report(Path(captures[40]))) == (2, 2 * LEAK_SIZE)
    assert leaked_blocks(json_report(Path(captures[41]))) == (0, 0)
    server.check_answers()
    assert server.quit() == (7, f"served {server.leaks_sent} leaks\n")


def test_attach_and_detach_while_libraries_load_and_unload(tmp_path: Path) -> None:
    """Two threads dlopen and dlclose a library with a long relocation pass (3000 data
    relocations, RELRO, BIND_NOW) without pause. Attach must leave an object the loader is
    still relocating for a later pass, and detach must not write to a library unloaded since
    it was patched (both killed the process within 30 cycles before)."""
    plugin_source = "#include <stdlib.h>\n" + "".join(
        f"int v{i}; int *const p{i} = &v{i};\n" for i in range(3000)) + (
        "void *plugin_alloc(void) { return malloc(32); }\n"
        "void plugin_free(void *p) { free(p); }\n")
    (tmp_path / "plugin.c").write_text(plugin_source)
    plugin = tmp_path / "libplugin.so"
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-Wl,-z,relro,-z,now", "-o", str(plugin),
                    str(tmp_path / "plugin.c")], check=True, capture_output=True)
    program = compile_source(tmp_path, "dlopen_churn.c",
                             (PROGRAMS / "dlopen_churn.c").read_text(), "-O1", "-pthread")
    process = subprocess.Popen([str(program), str(plugin)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        control_dir = str(tmp_path / "ctl")
        shim = str(find_shim_library())
        settings = AttachSettings(control_dir=control_dir, capture_dir=str(tmp_path))
        for cycle in range(30):
            memory = check_attachable(process.pid, shim, "/tmp")
            attach(process.pid, shim, settings, memory, "/tmp", lambda _message: None)
            time.sleep(0.02)
            detached = detach(process.pid, control_dir)
            Path(detached.capture).unlink()
            assert process.poll() is None, f"the program died in cycle {cycle}"
    finally:
        process.kill()
        process.wait()


def test_attach_while_every_thread_allocates(build_dir: Path, tmp_path: Path) -> None:
    """The safe-point search on a process whose threads are almost always inside malloc or
    free: each attach waits for a thread outside them, and the program never notices."""
    exe = compile_program("alloc_storm.c", build_dir, "-O2")
    storm = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        assert storm.stdout is not None and storm.stdout.readline() == "ready\n"
        env = attach_env(tmp_path / "ctl")
        for _ in range(5):
            done = leaktrace("attach", str(storm.pid), "--duration", "0.2", "--verbose",
                             env=env, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            assert "leaktrace: collected from" in done.stderr
        assert storm.poll() is None
        storm.send_signal(signal.SIGUSR1)
        assert storm.wait(120) == 0  # every thread's blocks intact, a normal exit
    finally:
        if storm.poll() is None:
            storm.kill()
            storm.wait()


EPOLL_LOOP = r"""
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
int main(void)
{
    int ep = epoll_create1(0);
    struct epoll_event event;
    puts("ready");
    fflush(stdout);
    for (;;)
        if (epoll_wait(ep, &event, 1, -1) < 0 && errno != EINTR) return 1;
}
"""


def test_warning_for_a_call_linux_does_not_restart(tmp_path: Path) -> None:
    """A single-threaded epoll loop: its epoll_wait() returns EINTR when stopped (as under
    gdb); attach says so, and a program that retries goes on."""
    exe = compile_source(tmp_path, "epoll_loop.c", EPOLL_LOOP)
    loop = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None and loop.stdout.readline() == "ready\n"
        done = leaktrace("attach", str(loop.pid), "--duration", "0.1",
                         env=attach_env(tmp_path / "ctl"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"thread {loop.pid} was blocked in epoll_wait()" in done.stderr, done.stderr
        assert loop.poll() is None
    finally:
        loop.kill()
        loop.wait()


# --- Ctrl-C at any moment ----------------------------------------------------------------------

def _after_interruption(server: Server, env: dict[str, str], tmp_path: Path) -> None:
    """The target answers; if the interrupted attach left it collecting, detach works."""
    server.check_answers()
    status = collecting_status(server.pid, env["LEAKTRACE_CONTROL_DIR"])
    if status is not None and status["collecting"]:
        done = leaktrace("detach", str(server.pid), env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    server.check_answers()


@pytest.mark.parametrize("moment", ["injection", "collection", "detach"])
def test_interrupt_at_a_given_moment(server: Server, tmp_path: Path, moment: str) -> None:
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    for _ in range(3):
        run = AttachRun(server.pid, "--verbose", env=env, cwd=tmp_path)
        trigger = {"injection": "stopping a thread", "collection": "attached to",
                   "detach": "detaching"}[moment]
        if moment == "detach":
            assert run.wait_for_line("attached to"), run.error_text
            run.interrupt()  # starts the detach...
        assert run.wait_for_line(trigger), run.error_text
        run.interrupt()  # ...and this one lands in it (or in the injection, the window)
        code = run.finish()
        # The stop was deferred, never fatal: the window closed through a normal detach.
        assert "leaktrace: collected from" in run.error_text, run.error_text
        assert "Traceback" not in run.error_text
        # A second Ctrl-C after the detach may cut the printing of the report short (130),
        # or come once leaktrace is done and exiting: then it dies of it, as any program.
        assert code == 0 or (moment == "detach" and code in (130, -signal.SIGINT)), \
            run.error_text
        _after_interruption(server, env, tmp_path)
    load.stop()
    assert server.quit()[0] == 7


@pytest.mark.parametrize("after", ["detaching", "leaktrace: collected from"])
def test_ctrl_c_pressed_again_and_again_after_the_detach(server: Server, tmp_path: Path,
                                                         after: str) -> None:
    """Ctrl-C mashed from the detach on: it lands in the printing of the report, in the
    hand-over of SIGINT back to Python, in imports, in the interpreter's teardown. Whatever
    it cuts short, leaktrace says where the capture is, in lines, never a traceback."""
    env = attach_env(tmp_path / "ctl")
    for _ in range(4):
        run = AttachRun(server.pid, "--verbose", env=env, cwd=tmp_path)
        assert run.wait_for_line("attached to"), run.error_text
        run.interrupt()
        assert run.wait_for_line(after), run.error_text
        while run.process.poll() is None:
            run.interrupt()
            time.sleep(0.0005)
        code = run.finish()
        assert "Traceback" not in run.error_text, run.error_text
        assert "Exception ignored" not in run.error_text, run.error_text
        # 0: done before it; 130: it cut the printing short; -SIGINT: it came while Python
        # was exiting. Either way the user learns where the capture is.
        assert code in (0, 130, -signal.SIGINT), run.error_text
        assert "leaktrace: collected from" in run.error_text, run.error_text
        assert ("capture saved to" in run.error_text
                or "the capture is saved" in run.error_text), run.error_text
        _after_interruption(server, env, tmp_path)
    assert server.quit()[0] == 7


def test_interrupt_at_random_moments(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    chance = random.Random(1234)
    for trial in range(8):
        run = AttachRun(server.pid, env=env, cwd=tmp_path)
        time.sleep(chance.uniform(0.0, 1.2))  # Python start-up, injection, window or detach
        run.interrupt(signal.SIGINT if trial % 2 == 0 else signal.SIGTERM)
        code = run.finish()
        # Before the attach began (Python start-up, checks) leaktrace simply dies of the
        # signal; once it has begun, the signal only ends the window: detach and report.
        if "leaktrace: attached to" in run.error_text:
            assert code == 0, run.error_text
            assert "leaktrace: collected from" in run.error_text
        _after_interruption(server, env, tmp_path)
    done = leaktrace("attach", str(server.pid), "--duration", "0.2", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    load.stop()
    assert server.quit()[0] == 7


# --- a real program -------------------------------------------------------------------------

def test_attach_to_python_http_server(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hello</p>\n")
    web = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind",
                            "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, cwd=tmp_path)
    try:
        assert web.stdout is not None
        port = re.search(r"port (\d+)", web.stdout.readline())
        assert port, "http.server did not say its port"
        url = f"http://127.0.0.1:{port[1]}/index.html"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=30) as answer:
                return str(answer.read().decode())

        assert fetch() == "<p>hello</p>\n"
        env = attach_env(tmp_path / "ctl")
        run = AttachRun(web.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
        run.wait_attached()
        for _ in range(20):
            assert fetch() == "<p>hello</p>\n"
        run.interrupt()
        assert run.finish() == 0, run.error_text
        report = json.loads(run.stdout)
        assert report["summary"]["total_allocations"] > 0, report["summary"]
        assert fetch() == "<p>hello</p>\n"  # still serving after detach
    finally:
        web.terminate()
        web.wait(30)


# --- one-line errors ------------------------------------------------------------------------

def test_no_such_process(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    env = attach_env(tmp_path / "ctl")
    assert_one_line_error(leaktrace("attach", str(gone.pid), env=env, cwd=tmp_path),
                          f"no process with pid {gone.pid}")
    assert_one_line_error(leaktrace("detach", str(gone.pid), env=env, cwd=tmp_path),
                          str(gone.pid))
    assert_one_line_error(leaktrace("attach", "0", env=env, cwd=tmp_path))
    assert_one_line_error(leaktrace("attach", "not-a-pid", env=env, cwd=tmp_path))


def test_process_in_another_pid_namespace(tmp_path: Path) -> None:
    """`unshare --pid --fork --mount-proc`: the target is pid 1 in its namespace and its /proc
    does not show leaktrace. Refused before anything is injected (it said the target could
    not read the settings file, after loading the shim into it)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare")
    outer = subprocess.Popen([unshare, "--pid", "--fork", "--mount-proc", "sleep", "60"])
    try:
        target = None
        for _ in range(200):
            children = Path(f"/proc/{outer.pid}/task/{outer.pid}/children").read_text().split()
            if children and "sleep" in Path(f"/proc/{children[0]}/cmdline").read_text():
                target = int(children[0])
                break
            time.sleep(0.05)
        assert target is not None
        done = leaktrace("attach", "--duration", "1", str(target),
                         env=attach_env(tmp_path / "ctl"), cwd=tmp_path)
        assert_one_line_error(done, "another PID namespace", "where its pid is 1")
        assert "libleaktrace_shim" not in Path(f"/proc/{target}/maps").read_text()
    finally:
        if target is not None:
            os.kill(target, signal.SIGKILL)  # pid 1 of its namespace: unshare's end leaves it
        outer.kill()
        outer.wait()


def test_32_bit_program(tmp_path: Path) -> None:
    source = tmp_path / "spin32.c"
    source.write_text("#include <unistd.h>\nint main(void) { sleep(60); return 0; }\n")
    exe = tmp_path / "spin32"
    built = subprocess.run(["gcc", "-m32", "-o", str(exe), str(source)], capture_output=True,
                           text=True)
    if built.returncode != 0:
        pytest.skip("gcc cannot build 32-bit programs here (no multilib)")
    target = subprocess.Popen([str(exe)])
    try:
        done = leaktrace("attach", str(target.pid), env=attach_env(tmp_path / "ctl"),
                         cwd=tmp_path)
        assert_one_line_error(done, "32-bit x86")
    finally:
        target.kill()
        target.wait()


def _refused_and_left_alone(target: subprocess.Popen[bytes], tmp_path: Path,
                            message: str) -> None:
    """`leaktrace attach` to `target` ends in one error line saying `message`, and the target
    runs on."""
    try:
        done = leaktrace("attach", str(target.pid), env=attach_env(tmp_path / "ctl"),
                         cwd=tmp_path)
        assert_one_line_error(done, message)
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()


def test_static_binary(tmp_path: Path) -> None:
    source = tmp_path / "static_sleep.c"
    source.write_text("#include <unistd.h>\nint main(void) { sleep(60); return 0; }\n")
    exe = tmp_path / "static_sleep"
    built = subprocess.run(["gcc", "-static", "-o", str(exe), str(source)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip("no static libc (libc.a) to build a static program")
    _refused_and_left_alone(subprocess.Popen([str(exe)]), tmp_path, "statically linked")


NO_SOCKETS = r"""
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
void *volatile sink;
int main(void)
{
    struct sock_filter deny_socket[] = { /* socket() fails with EPERM, all else is allowed */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog filter = { sizeof deny_socket / sizeof deny_socket[0], deny_socket };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter))
        return 1;
    puts("ready");
    fflush(stdout);
    char line[16];
    while (fgets(line, sizeof line, stdin)) sink = malloc(100); /* each line: a leak */
    return 7;
}
"""


def test_a_process_that_may_not_make_sockets_is_not_attached(tmp_path: Path) -> None:
    """A seccomp filter denies socket(): the session could never be detached (detach, status
    and scan go through the control socket), so attach refuses in one line and patches
    nothing. It attached, and left the process collecting until it exited."""
    exe = compile_source(tmp_path, "no_sockets.c", NO_SOCKETS, "-O0")
    work = tmp_path / "work"
    work.mkdir()
    target = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=work)
    try:
        assert target.stdout is not None and target.stdout.readline() == b"ready\n"
        done = leaktrace("attach", str(target.pid), env=attach_env(tmp_path / "ctl"),
                         cwd=tmp_path)
        assert_one_line_error(done, "cannot make its control socket",
                              "Operation not permitted", "nothing was attached")
        out, err = target.communicate(b"a\nb\n", timeout=60)
    finally:
        target.kill()
        target.wait()
    assert (target.returncode, out, err) == (7, b"", b"")
    assert list(work.iterdir()) == []  # no capture at exit: it never collected


def _started_reading_stdin(exe: Path) -> subprocess.Popen[str]:
    """`exe` started with pipes for stdin and stdout, once it has said "ready"."""
    target = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert target.stdout is not None and target.stdout.readline() == "ready\n"
    return target


COPIED_TABLE_LIBRARY = r"""
#include <stdlib.h>
void *(*lib_malloc)(size_t) = malloc; /* libxml2's xmlMalloc, xmlFree */
void (*lib_free)(void *) = free;
void *lib_make(size_t n) { return lib_malloc(n); }
void lib_release(void *p) { lib_free(p); }
"""
COPIED_TABLE_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
extern void *(*lib_malloc)(size_t);
extern void (*lib_free)(void *);
void *lib_make(size_t n);
void lib_release(void *p);
void *kept[64];
int main(void)
{
    puts("ready");
    fflush(stdout);
    char line[16];
    for (int n = 0; fgets(line, sizeof line, stdin) && n < 64; n++) {
        for (int i = 0; i < 10; i++) lib_release(lib_make(100));
        lib_free(lib_malloc(55)); /* the program's own use of the copied variables */
        kept[n] = lib_make(77);
        puts("done");
        fflush(stdout);
    }
    return 0;
}
"""


def test_a_copied_pointer_to_malloc_in_the_executable_is_patched(tmp_path: Path) -> None:
    """A position-dependent executable that names a library's `xmlMalloc`-like variables gets
    copies of them (R_X86_64_COPY), and the library uses those. attach patched only the
    library's originals: no allocation through them was seen (0 blocks here). Now the copies
    point at the hooks too, and detach puts them back."""
    library = compile_source(tmp_path, "libcopied.c", COPIED_TABLE_LIBRARY, "-O1", "-shared",
                             "-fPIC")
    exe = compile_source(tmp_path, "copied.c", COPIED_TABLE_PROGRAM, "-O1", "-no-pie",
                         "-fno-pic", "-Wl,--no-as-needed", str(library), f"-Wl,-rpath,{tmp_path}")
    relocations = subprocess.run(["readelf", "-rW", str(exe)], capture_output=True, text=True)
    assert "R_X86_64_COPY" in relocations.stdout and "lib_free" in relocations.stdout
    target = _started_reading_stdin(exe)
    try:
        assert target.stdin is not None and target.stdout is not None
        env = attach_env(tmp_path / "ctl")
        run = AttachRun(target.pid, "--duration", "600", "--format", "json",
                        *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)
        run.wait_attached()
        for _ in range(3):
            target.stdin.write("cycle\n")
            target.stdin.flush()
            assert target.stdout.readline() == "done\n"
        run.interrupt(signal.SIGTERM)
        assert run.finish() == 0, run.error_text
        live = [(r["bytes"], r["blocks"]) for r in json.loads(run.stdout)["records"]]
        assert live == [(3 * 77, 3)], live
        # After detach the copies hold libc's functions again: the program runs on as before.
        target.stdin.write("cycle\n")
        target.stdin.flush()
        assert target.stdout.readline() == "done\n"
        target.stdin.close()
        assert target.wait(60) == 0
    finally:
        target.kill()
        target.wait()


FAST_BIN_PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { uintptr_t first, second; void *payload; uintptr_t rest[2]; }; /* a 48-byte chunk */
__attribute__((noinline)) static void drop_list(void)
{
    struct node *nodes[20];
    for (int i = 0; i < 20; i++) {
        nodes[i] = calloc(1, sizeof *nodes[i]);
        nodes[i]->payload = memset(malloc(200), 1, 200);
    }
    for (int i = 0; i < 20; i++) free(nodes[i]); /* 7 to the thread's cache, 13 to a fast bin */
}
int main(void)
{
    puts("ready");
    fflush(stdout);
    char line[16];
    while (fgets(line, sizeof line, stdin)) {
        drop_list();
        puts("done");
        fflush(stdout);
    }
    return 0;
}
"""


def _glibc_version() -> tuple[int, ...]:
    name = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0"
    return tuple(int(part) for part in name.split()[-1].split(".")[:2])


def _scan_after_one_round(exe: Path, tmp_path: Path) -> dict[str, Any]:
    """Attaches to `exe` (waiting on stdin), has it run one round ("go"), and returns the JSON
    report of a scan made then; detaches."""
    target = _started_reading_stdin(exe)
    try:
        assert target.stdin is not None and target.stdout is not None
        env = attach_env(tmp_path / "ctl")
        run = AttachRun(target.pid, "--duration", "600", env=env, cwd=tmp_path)
        run.wait_attached()
        target.stdin.write("go\n")
        target.stdin.flush()
        assert target.stdout.readline() == "done\n"
        scanned = leaktrace("scan", str(target.pid), "--format", "json", "--show", "all",
                            env=env, cwd=tmp_path)
        assert scanned.returncode == 0, scanned.stderr
        run.interrupt(signal.SIGTERM)
        assert run.finish() == 0, run.error_text
        report: dict[str, Any] = json.loads(scanned.stdout)
        return report
    finally:
        target.kill()
        target.wait()


def _blocks_by_kind(report: dict[str, Any], size: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for record in report["records"]:
        if record["bytes"] == size * record["blocks"]:
            kinds[record["leak_kind"]] = kinds.get(record["leak_kind"], 0) + record["blocks"]
    return kinds


@pytest.mark.skipif(_glibc_version() < (2, 32), reason="fast bins are safe-linked from glibc 2.32")
def test_chunks_freed_to_a_fast_bin_are_not_roots(tmp_path: Path) -> None:
    """Attached, the heap's chunks the shim does not know are followed (blocks from before the
    attach), but not free ones. A chunk freed to a fast bin, once its thread's cache for that
    size is full, looks in use to a walk of the heap and keeps its old words: the payloads of
    the list nodes that went there (14 of 20) stayed still reachable. They are told by their
    first word, the next chunk of the bin mangled with its own address (safe-linking)."""
    exe = compile_source(tmp_path, "fast_bin.c", FAST_BIN_PROGRAM, "-O0")
    assert _blocks_by_kind(_scan_after_one_round(exe, tmp_path), 200) == {"definitely lost": 20}


HELD_BEFORE_ATTACH_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void **volatile kept_holder, **volatile dropped_holder, *scratch[10];
__attribute__((noinline)) static void **holder(void) { return calloc(10, sizeof(void *)); }
__attribute__((noinline)) static void fill(void **h)
{
    for (int i = 0; i < 10; i++) h[i] = memset(malloc(300), 1, 300);
}
int main(void)
{
    kept_holder = holder();
    dropped_holder = holder();
    puts("ready");
    fflush(stdout);
    char line[16];
    while (fgets(line, sizeof line, stdin)) {
        fill(kept_holder);
        fill(dropped_holder);
        dropped_holder = NULL;
        fill(scratch); /* no copy of the dropped payloads' addresses left in a register */
        for (int i = 0; i < 10; i++) free(scratch[i]);
        puts("done");
        fflush(stdout);
    }
    return 0;
}
"""


def test_blocks_held_by_blocks_from_before_the_attach_get_their_kinds(tmp_path: Path) -> None:
    """Attached, the heap's chunks from before the attach are unknown. Taken as roots, the
    blocks only they hold were still reachable even when those chunks were lost themselves.
    Walked as blocks without a record, the payloads of the holder the program still has are
    still reachable, and those of the holder it dropped indirectly lost, as valgrind says of a
    launched run."""
    exe = compile_source(tmp_path, "held_before.c", HELD_BEFORE_ATTACH_PROGRAM, "-O0")
    report = _scan_after_one_round(exe, tmp_path)
    kinds = _blocks_by_kind(report, 300)
    assert kinds == {"still reachable": 10, "indirectly lost": 10}, kinds
    assert report["counters"]["scan_unrecorded_blocks"] >= 2


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


@pytest.mark.skipif(not os.path.exists(JEMALLOC), reason="libjemalloc2 is not installed")
def test_a_process_allocating_from_jemalloc_is_refused(tmp_path: Path) -> None:
    """Its blocks are jemalloc's: glibc's realloc, which the hooks call, aborted Debian's
    redis-server at once. Refused in one line, and the process is left alone."""
    target = subprocess.Popen(["sleep", "60"], env={**os.environ, "LD_PRELOAD": JEMALLOC})
    time.sleep(0.3)  # its libraries mapped
    _refused_and_left_alone(target, tmp_path, "allocates with libjemalloc.so.2")


def test_process_already_traced(server: Server, tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    tracer = subprocess.Popen(["strace", "-f", "-o", os.devnull, "-p", str(server.pid)],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "TracerPid:\t0" in Path(f"/proc/{server.pid}/status").read_text():
            assert time.monotonic() < deadline, "strace never attached"
            time.sleep(0.02)
        done = leaktrace("attach", str(server.pid), env=attach_env(tmp_path / "ctl"),
                         cwd=tmp_path)
        assert_one_line_error(done, "already being traced", "strace")
    finally:
        tracer.terminate()
        tracer.wait(30)
    server.check_answers()


def test_attach_again_after_the_shim_file_was_replaced(server: Server, tmp_path: Path) -> None:
    """The shim a process loaded at an earlier attach stays loaded; when its file is then
    replaced (leaktrace reinstalled), a new attach must use the loaded copy's symbols. The same
    build again (same build id) is attached; another build is refused in one line, and the
    process runs on (a call at the new file's offsets crashed it with SIGSEGV)."""
    from leaktrace.symbolize.elf_info import read_elf_info

    installed = find_shim_library()
    shim = tmp_path / "shim" / installed.name
    shim.parent.mkdir()
    shutil.copyfile(installed, shim)
    env = dict(attach_env(tmp_path / "ctl"), LEAKTRACE_SHIM=str(shim))

    def attach_once() -> subprocess.CompletedProcess[str]:
        return leaktrace("attach", str(server.pid), "--duration", "0.3", "--format", "json",
                         *ATTACH_EVERY_RECORD, env=env, cwd=tmp_path)

    def replace_with(content: bytes) -> None:
        shim.unlink()  # as pip does: the loaded copy becomes "(deleted)"
        shim.write_bytes(content)

    first = attach_once()
    assert first.returncode == 0, first.stderr
    replace_with(installed.read_bytes())
    server.leak(4)
    same_build = attach_once()
    assert same_build.returncode == 0, same_build.stderr
    info = read_elf_info(str(installed))
    assert info is not None and info.build_id
    content = installed.read_bytes()
    at = content.index(info.build_id)
    replace_with(content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1:])
    refused = attach_once()
    assert_one_line_error(refused, "replaced by another build", "restart the process")
    server.check_answers()
    assert server.quit()[0] == 7


def caught_signals(pid: int) -> int:
    """The process's caught signals (SigCgt), less glibc's own two (32 and 33, whose handlers
    glibc installs once the process has a second thread: the shim's control thread)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)[1], 16)  # type: ignore[index]
    return mask & ~(0b11 << 31)


def test_a_scan_leaves_no_signal_handler_after_detach(server: Server, tmp_path: Path) -> None:
    """A scan while attached installs the handler that parks threads, on a real-time signal
    the program does not use; detach gives that signal its default action back (it stayed
    caught, so the signal no longer ended the process)."""
    env = attach_env(tmp_path / "ctl")
    before = caught_signals(server.pid)
    run = AttachRun(server.pid, env=env, cwd=tmp_path)
    run.wait_attached()
    scanned = leaktrace("scan", str(server.pid), env=env, cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    assert caught_signals(server.pid) != before  # the scan's handler, while attached
    run.interrupt()
    assert run.finish() == 0, run.error_text
    assert caught_signals(server.pid) == before
    # Detached, it is not traced; the shim stays loaded: said as such, not "no allocation yet".
    assert_one_line_error(leaktrace("status", str(server.pid), env=env, cwd=tmp_path),
                          "detached since", f"attach {server.pid}")
    server.check_answers()
    assert server.quit()[0] == 7


def test_session_ended_by_detach_from_elsewhere(server: Server, tmp_path: Path) -> None:
    """`leaktrace detach PID` from another terminal ends a session its `leaktrace attach` still
    watches: detach prints the report; attach, at the end of its window, says so and exits 0
    (it said "process N is not attached" and exited 2)."""
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, "--duration", "3", env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(2)
    detached = leaktrace("detach", "--fail-on-leak", str(server.pid), env=env, cwd=tmp_path)
    assert detached.returncode == 99, detached.stderr  # the two leaks, in detach's report
    assert run.finish() == 0, run.error_text
    assert ("leaktrace: the session was ended by `" in run.error_text
            and f" detach {server.pid}`, which printed its report" in run.error_text)
    assert "error" not in run.error_text
    assert server.quit()[0] == 7


def test_a_waiting_attach_ends_when_detach_ends_its_session(server: Server,
                                                           tmp_path: Path) -> None:
    """An attach without --duration whose session `leaktrace detach` ended stops waiting at
    once (it waited for the program's exit, then called the detach capture a capture at exit:
    "exited during the collection window")."""
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, env=env, cwd=tmp_path)
    run.wait_attached()
    server.leak(3)
    detached = leaktrace("detach", "--fail-on-leak", str(server.pid), env=env, cwd=tmp_path)
    assert detached.returncode == 99, detached.stderr
    assert run.finish(timeout=30) == 0, run.error_text
    assert f" detach {server.pid}`, which printed its report" in run.error_text
    assert "exited during" not in run.error_text and run.stdout == ""
    server.check_answers()
    assert server.quit()[0] == 7


def test_an_old_attach_never_ends_a_newer_session(server: Server, tmp_path: Path) -> None:
    """Attach A, `leaktrace detach`, attach B: A, stopped meanwhile so that it could not see
    its session end, then told to stop, leaves B's session alone (it detached B and showed
    B's window as its own). B ends later with its own report."""
    env = attach_env(tmp_path / "ctl")
    first = AttachRun(server.pid, env=env, cwd=tmp_path)
    first.wait_attached()
    first.process.send_signal(signal.SIGSTOP)
    try:
        ended = leaktrace("detach", str(server.pid), env=env, cwd=tmp_path)
        assert ended.returncode == 0, ended.stderr
        second = AttachRun(server.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env,
                           cwd=tmp_path)
        second.wait_attached()
        first.interrupt(signal.SIGTERM)
    finally:
        first.process.send_signal(signal.SIGCONT)
    assert first.finish(timeout=30) == 0, first.error_text
    assert f" detach {server.pid}`, which printed its report" in first.error_text
    assert first.stdout == ""
    server.leak(2)
    status = leaktrace("status", str(server.pid), env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr  # B still collects
    second.interrupt()
    assert second.finish() == 0, second.error_text
    assert leaked_blocks(json.loads(second.stdout)) == (2, 2 * LEAK_SIZE)
    assert server.quit()[0] == 7


def test_detach_ends_only_the_session_it_names(server: Server, tmp_path: Path) -> None:
    """The control command `detach NAME` is refused once session NAME is over."""
    settings = AttachSettings(control_dir=str(tmp_path / "ctl"), capture_dir=str(tmp_path),
                              session="first")
    shim = str(find_shim_library())
    memory = check_attachable(server.pid, shim, str(tmp_path))
    attach(server.pid, shim, settings, memory, str(tmp_path), lambda _: None)
    detach(server.pid, settings.control_dir, "first")
    later = AttachSettings(control_dir=settings.control_dir, capture_dir=str(tmp_path),
                           session="second")
    attach(server.pid, shim, later, check_attachable(server.pid, shim, str(tmp_path)),
           str(tmp_path), lambda _: None)
    with pytest.raises(SessionEnded):
        detach(server.pid, settings.control_dir, "first")
    with pytest.raises(ControlError, match="that attach session has ended"):
        send_command(server.pid, "detach", "first", directory=settings.control_dir)
    assert collecting_status(server.pid, settings.control_dir) is not None
    assert os.path.isfile(detach(server.pid, settings.control_dir, "second").capture)
    assert server.quit()[0] == 7


def test_detach_of_a_stopped_process_says_detach(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, env=env, cwd=tmp_path)
    run.wait_attached()
    os.kill(server.pid, signal.SIGSTOP)
    try:
        stopped = leaktrace("detach", str(server.pid), env=env, cwd=tmp_path)
        assert_one_line_error(stopped, "is stopped", "cannot detach", f"kill -CONT {server.pid}")
    finally:
        os.kill(server.pid, signal.SIGCONT)
    run.interrupt()
    assert run.finish() == 0, run.error_text
    assert server.quit()[0] == 7


def test_already_attached_and_stopped(server: Server, tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    run = AttachRun(server.pid, env=env, cwd=tmp_path)
    run.wait_attached()
    second = leaktrace("attach", str(server.pid), env=env, cwd=tmp_path)
    assert_one_line_error(second, "already traced by leaktrace", f"leaktrace detach {server.pid}")
    run.interrupt()
    assert run.finish() == 0, run.error_text
    os.kill(server.pid, signal.SIGSTOP)
    try:
        stopped = leaktrace("attach", str(server.pid), env=env, cwd=tmp_path)
        assert_one_line_error(stopped, "is stopped", f"kill -CONT {server.pid}")
    finally:
        os.kill(server.pid, signal.SIGCONT)
    thread = next(int(t) for t in os.listdir(f"/proc/{server.pid}/task")
                  if int(t) != server.pid)
    assert_one_line_error(leaktrace("attach", str(thread), env=env, cwd=tmp_path),
                          f"thread of process {server.pid}")
    assert server.quit()[0] == 7


def test_process_started_by_leaktrace_run(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program(SOURCE, build_dir, "-O2")
    env = attach_env(tmp_path / "ctl")
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "run.lt"), "--", str(exe)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=tmp_path)
    try:
        traced = Server(run)
        traced.leak(1)  # the shim's control socket opens at the first allocation
        [sock] = (tmp_path / "ctl").glob("*.sock")
        pid = int(sock.name.split(".")[0])
        done = leaktrace("attach", str(pid), env=env, cwd=tmp_path)
        assert_one_line_error(done, "already runs under leaktrace", f"report --pid {pid}")
        assert traced.client.request("quit") == "bye"
    finally:
        run.communicate(timeout=120)


def test_another_users_process(server: Server, tmp_path: Path) -> None:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run leaktrace as another user")
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-c", "import click, elftools, leaktrace"],
                           capture_output=True, env=os.environ.copy())
    if probe.returncode != 0:
        pytest.skip("leaktrace cannot be imported by user nobody here")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *LEAKTRACE, "attach", str(server.pid)], capture_output=True,
                          text=True, env=attach_env(tmp_path / "ctl-nobody"), timeout=120)
    assert_one_line_error(done, "belongs to uid 0")
    server.check_answers()


def test_root_attaches_to_another_users_process(build_dir: Path, tmp_path: Path) -> None:
    """The shim then needs that user's control directory, a settings file it can read and
    a capture directory it can write."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to start a process as another user")
    shared = Path(tempfile.mkdtemp(prefix="leaktrace-attach-test-"))  # nobody can use it
    server = None
    try:
        shared.chmod(0o777)
        exe = Path(shutil.copy(compile_program(SOURCE, build_dir, "-O2"), shared / "server"))
        server = Server.start(build_dir, shared, exe=exe, prefix=(
            "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"))
        env = {k: v for k, v in os.environ.items() if k != "LEAKTRACE_CONTROL_DIR"}
        not_writable = tmp_path / "private"
        not_writable.mkdir(mode=0o700)
        refused = leaktrace("attach", str(server.pid), env=env, cwd=not_writable)
        assert_one_line_error(refused, "uid 65534", "-o FILE")
        run = AttachRun(server.pid, "--format", "json", *ATTACH_EVERY_RECORD, env=env, cwd=shared)
        run.wait_attached()
        server.leak(6)
        run.interrupt()
        assert run.finish() == 0, run.error_text
        assert leaked_blocks(json.loads(run.stdout)) == (6, 6 * LEAK_SIZE)
        assert server.quit()[0] == 7
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(shared, ignore_errors=True)


def test_attach_to_a_process_whose_main_thread_has_ended(build_dir: Path, tmp_path: Path) -> None:
    """/proc/PID is the ended main thread's, a zombie's: the process is seen through its live
    thread, attach injects there, and the window's leaks are reported."""
    exe = compile_program("main_thread_exits.c", build_dir, "-O0")
    server = subprocess.Popen([str(exe), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "main ends\n"
        assert server.stdout.readline() == "ready\n"
        capture = tmp_path / "window.lt"
        done = leaktrace("attach", str(server.pid), "--duration", "0.5", "-o", str(capture),
                         env=attach_env(tmp_path / "ctl"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "leaktrace: collected from" in done.stderr
        [record] = records_from(json_report(capture), "main_thread_exits.c", "serve")
        assert record["blocks"] >= 10 and record["bytes"] == 64 * record["blocks"]
        assert server.poll() is None  # it goes on
    finally:
        server.kill()
        server.wait()
