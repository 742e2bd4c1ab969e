"""`leaktrace shell PID` driven through a terminal (pexpect): help, status, top with the
change since the previous capture, dump of a rank and of a stack id, growth, pause/resume,
report to a file, tab completion, and a clear message when the process exits under it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from liveharness import LiveServer

pexpect = pytest.importorskip("pexpect")


@pytest.fixture()
def server(build_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(build_dir, tmp_path)
    yield live
    live.kill()


class Shell:
    def __init__(self, server: LiveServer) -> None:
        self.prompt = f"leaktrace {server.pid}> "
        self.child = pexpect.spawn(sys.executable, ["-m", "leaktrace", "shell", str(server.pid)],
                                   env=server.env, cwd=str(server.work), encoding="utf-8",
                                   timeout=60, dimensions=(50, 200))
        self.child.expect_exact(self.prompt)
        self.intro = self.child.before

    def run(self, line: str) -> str:
        self.child.sendline(line)
        self.child.expect_exact(self.prompt)
        output: str = self.child.before
        # The terminal echoes the command line first.
        return output.split("\n", 1)[1] if "\n" in output else ""


def test_shell_session(server: LiveServer, tmp_path: Path) -> None:
    for _ in range(6):
        server.request("leak")
    shell = Shell(server)
    assert f"pid {server.pid}" in shell.intro

    help_text = shell.run("help")
    for command in ("status", "top", "dump", "growth", "reset", "pause", "resume", "report",
                    "scan", "quit"):
        assert re.search(rf"\b{command}\b", help_text), help_text
    assert "EOF" not in help_text

    status = shell.run("status")
    assert f"pid:        {server.pid}" in status and "collecting: yes" in status

    top = shell.run("top 20")
    leak_row = next(line for line in top.splitlines() if "handle_leak" in line)
    rank, size, blocks = leak_row.split()[:3]
    assert (size, blocks) == ("288", "6")
    stack_id = leak_row.split()[5]

    for _ in range(4):
        server.request("leak")
    server.request("once")
    top = shell.run("top 20")
    assert "change since report-1" in top
    leak_row = next(line for line in top.splitlines() if "handle_leak" in line)
    assert leak_row.split()[1:5] == ["480", "10", "+192", "B"]
    once_row = next(line for line in top.splitlines() if "handle_once" in line)
    assert once_row.split()[3] == "new"

    rank = leak_row.split()[0]
    dump = shell.run(f"dump {rank}")
    assert dump.splitlines()[0].startswith(f"stack {stack_id} (malloc): 480 bytes in 10 blocks")
    assert "#0 handle_leak" in dump and "request_server.c" in dump
    assert "#1 serve" in dump and "#2 worker" in dump
    assert "growth:" in dump and "interval" in dump
    assert shell.run(f"dump {stack_id}").splitlines()[0].startswith(f"stack {stack_id}")
    assert "no record 999" in shell.run("dump 999")

    assert "== leaktrace growth ==" in shell.run("growth 3")

    assert "paused" in shell.run("pause")
    server.request("leak")  # not recorded
    assert "resumed" in shell.run("resume")
    assert "baseline set at" in shell.run("reset")
    assert "snapshot interval: 0.2 s" in shell.run("interval 0.2")
    assert "error:" in shell.run("interval 0.001")
    assert "unknown command: frobnicate" in shell.run("frobnicate")

    report_file = tmp_path / "now.txt"
    assert "report written to" in shell.run(f"report {report_file}")
    assert "== leaktrace report ==" in report_file.read_text()

    # Tab completion of a command name.
    shell.child.send("sta\t")
    shell.child.expect_exact("status")
    shell.child.sendline("")
    shell.child.expect_exact(shell.prompt)

    # The process exits under the shell: one clear line, and the shell ends.
    returncode, stdout, stderr = server.quit()
    assert returncode == 3, stderr
    assert stdout.endswith(f"bye after {len(server.answers)} requests\n")
    shell.child.sendline("status")
    shell.child.expect(pexpect.EOF)
    assert f"process {server.pid} has exited" in shell.child.before
    assert "leaktrace report" in shell.child.before  # where its final capture is
    shell.child.close()
    assert shell.child.exitstatus == 2  # bad input: the process is gone


def test_shell_names_the_final_capture_without_an_earlier_one(server: LiveServer) -> None:
    """Only `status` asked, then the process exits: the shell still names the capture it wrote
    at exit (status's `capture`), not only when a capture taken in the shell showed where."""
    shell = Shell(server)
    assert "live" in shell.run("status")
    returncode, _stdout, stderr = server.quit()
    assert returncode == 3, stderr
    shell.child.sendline("status")
    shell.child.expect(pexpect.EOF)
    assert f"process {server.pid} has exited; its final capture:" in shell.child.before
    assert str(server.capture) in shell.child.before
    shell.child.close()
    assert shell.child.exitstatus == 2


@pytest.mark.parametrize("leave", ["quit", "exit", "EOF"])
def test_shell_quits_cleanly(server: LiveServer, leave: str) -> None:
    """quit, exit (its alias) and Ctrl-D leave; the user guide lists all three."""
    shell = Shell(server)
    if leave == "EOF":
        shell.child.sendeof()
    else:
        shell.child.sendline(leave)
    shell.child.expect(pexpect.EOF)
    shell.child.close()
    assert shell.child.exitstatus == 0
    assert server.status()["pid"] == server.pid  # the process goes on
    returncode, stdout, stderr = server.quit()
    assert (returncode, stdout) == (3, "bye after 0 requests\n"), stderr
