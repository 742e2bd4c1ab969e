"""The control socket from the client's side: where sockets are, a clear one-line error for
each failure (against a fake server), then the real shim: status, on-demand reports with the
right change since the previous one, ps, mtrace() checkpoints, and refusing another user."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from leakharness import (
    LEAKTRACE,
    assert_one_line_error,
    compile_program,
    json_report,
    program_records,
    records_from,
)
from liveharness import LiveServer, control_env, python_for

from leaktrace.control.client import (
    ControlError,
    NotTraced,
    PermissionRefused,
    ProcessGone,
    control_dir,
    send_command,
)

SRC = Path(__file__).parent.parent / "src"


def test_control_dir_is_chosen_as_the_shim_does() -> None:
    uid = os.getuid()
    assert control_dir({"LEAKTRACE_CONTROL_DIR": "/x/y", "XDG_RUNTIME_DIR": "/run/u"}) == "/x/y"
    assert control_dir({"XDG_RUNTIME_DIR": "/run/user/5"}) == "/run/user/5/leaktrace"
    assert control_dir({"XDG_RUNTIME_DIR": "relative"}) == f"/tmp/leaktrace-{uid}"
    assert control_dir({"LEAKTRACE_CONTROL_DIR": ""}) == f"/tmp/leaktrace-{uid}"


# ---- a fake traced process: a sleeping child and a socket served by a test thread --------
@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "600"])
    yield child
    child.kill()
    child.wait()


# A fake traced process: it listens at <ctl>/<its own pid>.sock (the client checks with
# SO_PEERCRED that the process asked is the one answering), prints the command line it got,
# then sends REPLY, or exits without answering when REPLY is "die".
FAKE_PROCESS = r"""
import os, socket, sys, time
ctl, reply = sys.argv[1], sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(os.path.join(ctl, f"{os.getpid()}.sock"))
listener.listen(1)
print("ready", flush=True)
client, _ = listener.accept()
print(client.recv(256).decode(), end="", flush=True)
if reply == b"die":
    os._exit(0)
client.sendall(reply)
client.close()
time.sleep(600)
"""


@pytest.fixture()
def fake_process(ctl: Path) -> Iterator[Callable[[bytes], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(reply: bytes) -> subprocess.Popen[str]:
        child = subprocess.Popen([sys.executable, "-c", FAKE_PROCESS, str(ctl),
                                  reply.decode("latin-1").encode("unicode_escape").decode()],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.wait()


def serve_once(path: Path, behaviour: Callable[[socket.socket, bytes], None]) -> threading.Thread:
    """Listen at `path`; for one client, read its line and hand both to `behaviour`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        with listener:
            client, _ = listener.accept()
            with client:
                behaviour(client, client.recv(256))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def answer(text: bytes) -> Callable[[socket.socket, bytes], None]:
    return lambda client, _line: client.sendall(text)


@pytest.fixture()
def ctl(tmp_path: Path) -> Path:
    directory = tmp_path / "ctl"
    directory.mkdir(mode=0o700)
    return directory


def test_answer_is_parsed(ctl: Path, fake_process: Callable[[bytes], subprocess.Popen[str]]
                          ) -> None:
    fake = fake_process(b'{"ok":true,"snapshot_interval_ms":250}\n')
    result = send_command(fake.pid, "interval", "0.25", directory=str(ctl))
    assert result == {"ok": True, "snapshot_interval_ms": 250}
    assert fake.stdout is not None and fake.stdout.readline() == "interval 0.25\n"


@pytest.mark.parametrize(("reply", "error", "message"), [
    (b"hello\n", ControlError, "not JSON"),
    (b'{"ok":false,"error":"unknown command"}\n', ControlError, "refused `status`: unknown"),
    (b'{"ok":false,"error":"permission denied: another user"}\n', PermissionRefused,
     "permission denied"),
    (b"", ControlError, "closed the connection without answering"),
])
def test_bad_answers(ctl: Path, fake_process: Callable[[bytes], subprocess.Popen[str]],
                     reply: bytes, error: type[Exception], message: str) -> None:
    fake = fake_process(reply)
    with pytest.raises(error, match=re.escape(message)):
        send_command(fake.pid, "status", directory=str(ctl))


def test_process_exits_mid_command(ctl: Path,
                                   fake_process: Callable[[bytes], subprocess.Popen[str]]
                                   ) -> None:
    fake = fake_process(b"die")
    with pytest.raises(ProcessGone, match="exited while answering `report`"):
        send_command(fake.pid, "report", directory=str(ctl))


def test_an_answer_from_another_process_is_refused(
        ctl: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """A socket at the right path, answered by a process that is not the one asked (this
    test process, for the sleeper): refused, whatever it says."""
    def reply(client: socket.socket, _line: bytes) -> None:
        with contextlib.suppress(OSError):  # the client hangs up without reading it
            client.sendall(b'{"ok":true,"pid":1}\n')

    serve_once(ctl / f"{sleeper.pid}.sock", reply)
    with pytest.raises(PermissionRefused, match=f"comes from process {os.getpid()}"):
        send_command(sleeper.pid, "status", directory=str(ctl))


def test_a_directory_open_to_others_is_refused(tmp_path: Path,
                                               sleeper: subprocess.Popen[bytes]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).bind(str(shared / f"{sleeper.pid}.sock"))
    with pytest.raises(PermissionRefused, match="open to other users"):
        send_command(sleeper.pid, "status", directory=str(shared))


def test_stale_socket_of_a_live_pid(ctl: Path, sleeper: subprocess.Popen[bytes]) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(ctl / f"{sleeper.pid}.sock"))
    stale.close()  # bound, never listening: connect is refused
    with pytest.raises(ControlError, match="stale"):
        send_command(sleeper.pid, "status", directory=str(ctl))


def test_no_such_process_and_not_traced(ctl: Path, sleeper: subprocess.Popen[bytes]) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(ProcessGone, match=f"no process with pid {gone.pid}"):
        send_command(gone.pid, "status", directory=str(ctl))
    with pytest.raises(NotTraced, match=f"process {sleeper.pid} \\(sleep\\) is not traced"):
        send_command(sleeper.pid, "status", directory=str(ctl))


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LEAKTRACE, *args], capture_output=True, text=True, env=env,
                          timeout=120)




def test_cli_errors_are_one_line(ctl: Path, sleeper: subprocess.Popen[bytes],
                                 fake_process: Callable[[bytes], subprocess.Popen[str]]) -> None:
    env = control_env(ctl)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for command in (["status", str(gone.pid)], ["report", "--pid", str(gone.pid)],
                    ["scan", str(gone.pid)], ["growth", "--pid", str(gone.pid)],
                    ["shell", str(gone.pid)]):
        assert_one_line_error(cli(*command, env=env), f"no process with pid {gone.pid}")
    assert_one_line_error(cli("status", str(sleeper.pid), env=env), "is not traced by leaktrace")
    assert_one_line_error(cli("status", "abc", env=env), "abc")
    assert_one_line_error(cli("report", env=env), "FILE or --pid")
    fake = fake_process(b"")
    assert_one_line_error(cli("report", "--pid", str(fake.pid), env=env),
                          "without answering")


def test_ps_lists_answering_processes_and_forgets_dead_ones(
        ctl: Path, fake_process: Callable[[bytes], subprocess.Popen[str]]) -> None:
    status = {"ok": True, "program": "fake-server", "uptime_ms": 125000,
              "collecting": True, "live_blocks": 12, "live_bytes": 4096}
    sleeper = fake_process(json.dumps(status).encode() + b"\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(ctl / f"{gone.pid}.sock"))
    dead.close()
    done = cli("ps", env=control_env(ctl))
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["PID", "PROGRAM", "UPTIME", "LIVE", "BLOCKS", "COLLECTING"]
    assert row.split() == [str(sleeper.pid), "fake-server", "2m05s", "4.0", "KiB", "12", "yes"]
    assert not (ctl / f"{gone.pid}.sock").exists()  # our own stale socket is cleaned up


def test_ps_verbose_says_why_a_socket_was_left_out(ctl: Path) -> None:
    """`ps -v` (in its --help; the user guide gives `leaktrace ps -v` too): a socket whose
    process is gone is removed and named on stderr; one that does not answer is skipped and
    named. Plain `ps` says nothing of either."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(ctl / f"{gone.pid}.sock"))
    dead.close()
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(ctl / f"{os.getpid()}.sock"))  # alive, but not a shim: never answers
    try:
        quiet = cli("ps", env=control_env(ctl))
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
        assert not (ctl / f"{gone.pid}.sock").exists()
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(ctl / f"{gone.pid}.sock"))
        dead.close()
        done = cli("ps", "-v", env=control_env(ctl))
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert f"leaktrace: removed {ctl / f'{gone.pid}.sock'} (process {gone.pid} is gone)" \
            in lines, done.stderr
        assert any(line.startswith(f"leaktrace: skipped {ctl / f'{os.getpid()}.sock'}: ")
                   for line in lines), done.stderr
        assert len(lines) == 2, done.stderr
    finally:
        silent.close()


# ---- the real shim ------------------------------------------------------------------------
@pytest.fixture()
def server(build_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(build_dir, tmp_path)
    yield live
    live.kill()


def by_function(report: dict, function: str) -> dict:
    [record] = [r for r in report["records"]
                if any(f["function"] == function for f in r["frames"][:2])]
    return record


def test_status_report_deltas_and_ps(server: LiveServer) -> None:
    status = server.status()
    assert status["ok"] and status["pid"] == server.pid and status["collecting"] is True
    assert status["program"] == server.exe.name
    for _ in range(10):
        server.request("leak")
    first = server.json("report", "--pid", str(server.pid))
    assert first["previous_capture"] is None  # nothing earlier to compare with
    assert (by_function(first, "handle_leak")["blocks"],
            by_function(first, "handle_leak")["bytes"]) == (10, 480)
    for _ in range(7):
        server.request("leak")
    server.request("once")
    server.request("work")
    second = server.json("report", "--pid", str(server.pid))
    assert second["previous_capture"]["against"] == "report-1"
    leak = by_function(second, "handle_leak")
    assert (leak["blocks"], leak["bytes"]) == (17, 17 * 48)
    assert leak["since_previous"] == {"bytes": 7 * 48, "blocks": 7, "new": False}
    once = by_function(second, "handle_once")
    assert once["since_previous"] == {"bytes": 77, "blocks": 1, "new": True}
    assert second["previous_capture"]["new_records"] >= 1
    # The text report says the same.
    text = server.leaktrace("report", "--pid", str(server.pid)).stdout
    assert "since report-2" in text and "new since the previous capture" not in text

    ps = server.leaktrace("ps")
    assert ps.returncode == 0 and str(server.pid) in ps.stdout and server.exe.name in ps.stdout

    returncode, stdout, stderr = server.quit()
    assert returncode == 3, stderr
    assert stdout.endswith(f"bye after {len(server.answers)} requests\n")
    # The run names every capture it wrote while it ran.
    for number in (1, 2, 3):
        assert f"report-{number} (report command at " in stderr
    assert "report-2 (report command" in stderr and "since report-1" in stderr
    assert not list(server.control_dir.glob("*.sock"))  # removed at exit


def test_pause_resume_reset_interval(server: LiveServer) -> None:
    pid = str(server.pid)
    assert server.leaktrace("status", pid).returncode == 0
    assert send_command(server.pid, "pause", directory=str(server.control_dir)) == {
        "ok": True, "collecting": False}
    for _ in range(3):
        server.request("leak")  # not recorded while paused
    send_command(server.pid, "resume", directory=str(server.control_dir))
    server.request("leak")
    assert send_command(server.pid, "interval", "0.5",
                        directory=str(server.control_dir))["snapshot_interval_ms"] == 500
    with pytest.raises(ControlError, match=re.escape("at least 0.01")):
        send_command(server.pid, "interval", "0.001", directory=str(server.control_dir))
    report = server.json("report", "--pid", pid)
    assert by_function(report, "handle_leak")["blocks"] == 1
    returncode, stdout, stderr = server.quit()
    assert returncode == 3, stderr
    assert stdout.endswith(f"bye after {len(server.answers)} requests\n")


def test_reset_marks_what_was_allocated_before(server: LiveServer) -> None:
    """The blocks a capture flags as born since the baseline (the per-block flag of
    capture_format.h) are what the report counts as allocated since the reset."""
    for _ in range(2):
        server.request("leak")
    before = server.json("report", "--pid", str(server.pid))["summary"]
    assert before["since_baseline"] is None  # no reset yet
    baseline = send_command(server.pid, "reset", directory=str(server.control_dir))
    assert baseline["baseline_ms"] > 0
    for _ in range(3):
        server.request("leak")
    after = server.json("report", "--pid", str(server.pid))["summary"]
    assert after["since_baseline"]["blocks"] == 3
    assert after["since_baseline"]["bytes"] == 3 * 48
    assert after["since_baseline"]["seconds"] == pytest.approx(baseline["baseline_ms"] / 1000,
                                                               abs=0.002)
    assert after["live"]["blocks"] == before["live"]["blocks"] + 3
    server.quit()


def test_scan_shows_leak_kinds(server: LiveServer) -> None:
    for key in range(4):
        server.request(f"cache {key}")
    for _ in range(5):
        server.request("leak")
    report = server.json("scan", "--show", "all", str(server.pid))
    assert report["scan"] is not None
    kinds = {}
    for record in report["records"]:
        if any(f["function"] in ("handle_leak", "new_entry") for f in record["frames"][:2]):
            name = "leak" if record["frames"][0]["function"] == "handle_leak" else "cache"
            kinds.setdefault(name, {})[record["leak_kind"]] = record["blocks"]
    # Only the last leaked block is still pointed to (by `sink`); the cache is reachable.
    assert kinds["leak"] == {"definitely lost": 4, "still reachable": 1}
    assert kinds["cache"] == {"still reachable": 4}
    assert (server.work / "server.scan-1.lt").exists()
    returncode, stdout, stderr = server.quit()
    assert returncode == 3, stderr
    assert stdout.endswith(f"bye after {len(server.answers)} requests\n")
    assert "scan-1 (scan command at " in stderr


def test_scan_writes_its_report_to_the_output_file(server: LiveServer) -> None:
    """`scan -o FILE`, as `report -o FILE`: the report goes to FILE, nothing to stdout (scan
    had no -o, which the user guide lists for both)."""
    server.request("leak")
    server.request("leak")
    out = server.work / "scan.json"
    done = server.leaktrace("scan", str(server.pid), "--format", "json", "-o", str(out))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    report = json.loads(out.read_text())
    leaks = [r for r in report["records"] if r["frames"][0]["function"] == "handle_leak"]
    assert sum(r["blocks"] for r in leaks if r["leak_kind"] == "definitely lost") == 1
    server.quit()


def test_a_stopped_process_is_said_to_be_stopped(server: LiveServer) -> None:
    """A stopped process (SIGSTOP, Ctrl-Z, a debugger) cannot answer: every command says so
    in one line at once (report, scan and growth waited 10 minutes in silence; their
    captures were written after SIGCONT for nobody). Resumed, it answers again."""
    server.request("leak")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while b") T" not in Path(f"/proc/{server.pid}/stat").read_bytes():
            assert time.monotonic() < deadline, "the process never stopped"
            time.sleep(0.01)
        for command in (["status", str(server.pid)], ["report", "--pid", str(server.pid)],
                        ["scan", str(server.pid)], ["growth", "--pid", str(server.pid)]):
            started = time.monotonic()
            assert_one_line_error(server.leaktrace(*command), "is stopped",
                                  f"kill -CONT {server.pid}")
            assert time.monotonic() - started < 10, command
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert server.status()["ok"]
    assert not list(server.work.glob("server.report-*.lt"))  # nothing asked for meanwhile
    assert server.quit()[0] == 3


# ---- mtrace() checkpoints ---------------------------------------------------------------
CHECKPOINT_LINES = [
    ("mtrace-1", "mtrace()", "300 bytes in 3 blocks"),
    ("mtrace-2", "mtrace()", "400 bytes in 2 blocks"),
    ("muntrace-3", "muntrace()", "1,000 bytes in 1 blocks"),
]


def run_checkpoints(build_dir: Path, tmp_path: Path, *options: str,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = compile_program("mtrace_checkpoints.c", build_dir, "-O0")
    return subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "m.lt"), *options, "--",
                           str(exe)], capture_output=True, text=True, cwd=tmp_path,
                          env=env or os.environ.copy(), timeout=120)


def test_mtrace_checkpoints_on_mtrace(build_dir: Path, tmp_path: Path) -> None:
    done = run_checkpoints(build_dir, tmp_path, "--start=on-mtrace")
    assert (done.returncode, done.stdout) == (5, "checkpoints done\n")
    # The first mtrace() starts recording; each later call writes one capture.
    assert sorted(p.name for p in tmp_path.glob("m.*.lt")) == [
        "m.mtrace-1.lt", "m.mtrace-2.lt", "m.muntrace-3.lt"]
    for name, why, amount in CHECKPOINT_LINES:
        assert re.search(rf"leaktrace:   {name} \({re.escape(why)} at [0-9.]+ s\): {amount} "
                         "allocated since the previous mtrace\\(\\) checkpoint and still live",
                         done.stderr), done.stderr
    expected = {"mtrace-1": ("phase_a", 3, 300), "mtrace-2": ("phase_b", 2, 400),
                "muntrace-3": ("phase_c", 1, 1000)}
    for name, (marker, blocks, size) in expected.items():
        report = json_report(tmp_path / f"m.{name}.lt")
        [record] = program_records(report, "mtrace_checkpoints.c")
        assert record == records_from(report, "mtrace_checkpoints.c", marker)[0]
        assert (record["blocks"], record["bytes"]) == (blocks, size)
        assert record["since_previous"] == {"bytes": size, "blocks": blocks,
                                            "new": record["since_previous"]["new"]}
        assert report["previous_capture"]["against"] == "the previous mtrace() checkpoint"
    # The final capture: what the checkpoints recorded and is still live (one phase-a block
    # was freed); nothing from before the first mtrace() or after muntrace().
    final = json_report(tmp_path / "m.lt")
    kept = {r["frames"][0]["function"]: (r["blocks"], r["bytes"])
            for r in program_records(final, "mtrace_checkpoints.c")}
    assert kept == {"phase_a": (2, 200), "phase_b": (2, 400), "phase_c": (1, 1000)}


def test_memleak_config_mtraceinit_records_from_the_start(build_dir: Path,
                                                           tmp_path: Path) -> None:
    env = dict(os.environ, MEMLEAK_CONFIG="mtraceinit")
    done = run_checkpoints(build_dir, tmp_path, env=env)
    assert (done.returncode, done.stdout) == (5, "checkpoints done\n")
    # Recording from the start, the first mtrace() is a checkpoint too.
    assert len(list(tmp_path.glob("m.*.lt"))) == 4
    first = json_report(tmp_path / "m.mtrace-1.lt")
    [before] = records_from(first, "mtrace_checkpoints.c", "before")
    assert (before["blocks"], before["bytes"]) == (5, 50)
    second = json_report(tmp_path / "m.mtrace-2.lt")
    assert [(r["blocks"], r["bytes"]) for r in program_records(second, "mtrace_checkpoints.c")
            ] == [(3, 300)]


# ---- another user -------------------------------------------------------------------------
def test_socket_refuses_another_uid(build_dir: Path, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root, to run a client as the user nobody")
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")
    python = python_for("nobody", SRC)
    if python is None:
        pytest.skip("no Python interpreter the user nobody may run with leaktrace importable")
    # The control directory must be reachable by path for nobody to even try.
    control = Path(tempfile.mkdtemp(prefix="leaktrace-ctl-", dir="/tmp"))
    try:
        server = LiveServer(build_dir, tmp_path, control_dir=control)
        try:
            client = ("import sys; sys.path.insert(0, sys.argv[1]);"
                      "from leaktrace.control.client import send_command, ControlError\n"
                      "try:\n    print(send_command(int(sys.argv[2]), 'status'))\n"
                      "except ControlError as e:\n    print('refused:', e)")
            env = {"LEAKTRACE_CONTROL_DIR": str(control), "PATH": os.environ["PATH"]}

            # The raw exchange, without the client's own checks of the directory.
            raw_client = ("import socket, sys\n"
                          "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                          "s.connect(sys.argv[1] + '/' + sys.argv[2] + '.sock')\n"
                          "s.sendall(b'status\\n'); print(s.recv(4096).decode())")

            def as_nobody(code: str = client, first: str = str(SRC)) -> str:
                done = subprocess.run(["runuser", "-u", "nobody", "--", "env", *(
                    f"{k}={v}" for k, v in env.items()), python, "-c", code, first,
                    str(server.pid)], capture_output=True, text=True, timeout=60)
                assert "Traceback" not in done.stderr, done.stderr
                return done.stdout

            # The directory is private (0700): nobody cannot even reach the socket.
            out = as_nobody()
            assert out.startswith("refused: ") and "permission denied" in out, out
            # Even with the file modes opened up, the shim checks the peer's uid itself.
            control.chmod(0o711)
            (control / f"{server.pid}.sock").chmod(0o777)
            out = as_nobody()
            assert out.startswith("refused: ") and "open to other users" in out, out
            out = as_nobody(raw_client, str(control))
            assert "permission denied: another user" in out, out
            # The owner is still served (in a private directory again).
            control.chmod(0o700)
            assert server.status()["pid"] == server.pid
            returncode, stdout, stderr = server.quit()
            assert returncode == 3, stderr
            assert stdout == "bye after 0 requests\n"
        finally:
            server.kill()
    finally:
        shutil.rmtree(control, ignore_errors=True)


CXX_CHECKPOINTS = """#include <mcheck.h>
struct Box { char bytes[100]; };
void *volatile sink;
__attribute__((noinline)) void make_boxes() { for (int i = 0; i < 3; i++) sink = new Box; }
int main() { mtrace(); make_boxes(); mtrace(); muntrace(); return 0; }
"""


def test_changes_since_the_previous_capture_of_cxx_new_records(tmp_path: Path) -> None:
    """Records the report names after C++'s operator new (their blocks are malloc's to the
    shim) get their backtrace's change since the previous capture too."""
    from native_programs import compile_source

    exe = compile_source(tmp_path, "cxx_checkpoints.cpp", CXX_CHECKPOINTS, "-O0")
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "m.lt"), "--start=on-mtrace",
                           "--", str(exe)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json_report(tmp_path / "m.mtrace-1.lt")
    [record] = [r for r in report["records"] if r["frames"][0]["function"] == "make_boxes()"]
    assert (record["kind"], record["blocks"], record["bytes"]) == \
        ("operator new(unsigned long)", 3, 300)
    assert record["since_previous"] == {"bytes": 300, "blocks": 3, "new": True}
