"""One exit-code policy for every command (leaktrace/exit_codes.py, README "Exit status"):
2 for a usage error or bad input, 99 for leaks found, the program's own status for run and
valgrind; and the --help texts that state it. Real command lines in subprocesses."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from leakharness import assert_one_line_error
from native_programs import compile_source

from leaktrace import exit_codes
from leaktrace.invocation import leaktrace_command

SRC = Path(__file__).parent.parent / "src"
SAMPLE = Path(__file__).parent / "data" / "capture-v1.lt"
COMMANDS = ["attach", "detach", "diff", "dump", "growth", "mem", "merge", "mtrace", "ps", "report",
            "run", "scan", "shell", "status", "valgrind", "watch"]


def leaktrace(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "leaktrace", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120, check=False)


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_error_exits_2_in_every_command(command: str) -> None:
    done = leaktrace(command, "--no-such-option")
    assert done.returncode == exit_codes.USAGE_ERROR == 2
    # Never taken for a program or file name (valgrind once said "command not found").
    assert_one_line_error(done, "No such option '--no-such-option'")


@pytest.mark.parametrize("args", [["report", "/nonexistent.lt"], ["dump", "/nonexistent.lt"],
                                  ["growth", "/nonexistent.lt"], ["mtrace", "/nonexistent.log"],
                                  ["status", "999999999"], ["scan", "999999999"],
                                  ["mem", "999999999"], ["detach", "999999999"]])
def test_input_error_exits_2(args: list[str]) -> None:
    done = leaktrace(*args)
    assert done.returncode == exit_codes.INPUT_ERROR == 2
    assert_one_line_error(done)


def test_leaks_found_is_99_in_report_and_mtrace(tmp_path: Path) -> None:
    assert leaktrace("report", str(SAMPLE)).returncode == 0
    assert leaktrace("report", str(SAMPLE), "--fail-on-leak").returncode == 99
    log = tmp_path / "trace.log"
    log.write_text("= Start\n@ [0x401136] + 0x5000 0x64\n= End\n")
    assert leaktrace("mtrace", str(log)).returncode == 0
    assert leaktrace("mtrace", str(log), "--fail-on-leak").returncode == 99
    assert leaktrace("mtrace", "--fail-on-leak=100", str(log)).returncode == 0


def test_bare_fail_on_leak_before_a_file_or_pid() -> None:
    """click would give a bare --fail-on-leak the next argument as its BYTES: before a file
    (or a PID) it is --fail-on-leak=0; a number is still BYTES; the program's own arguments
    after `--` are never touched."""
    assert leaktrace("report", "--fail-on-leak", str(SAMPLE)).returncode == 99
    assert leaktrace("report", "--fail-on-leak", "100000000", str(SAMPLE)).returncode == 0
    done = leaktrace("report", "--fail-on-leak=many", str(SAMPLE))
    assert_one_line_error(done, "'many' is not a number of bytes (--fail-on-leak=4096)")
    # click would read '-1' as the next option ("No such option '-1'")
    for command in (["report", "--fail-on-leak=-1", str(SAMPLE)],
                    ["run", "--fail-on-leak=-1", "--", "true"]):
        assert_one_line_error(leaktrace(*command),
                              "'-1' is not a number of bytes (--fail-on-leak=4096)")
    from leaktrace.cli import _bare_fail_on_leak

    assert _bare_fail_on_leak(["run", "--fail-on-leak", "--", "prog", "--fail-on-leak", "x"]) \
        == ["run", "--fail-on-leak=0", "--", "prog", "--fail-on-leak", "x"]
    assert _bare_fail_on_leak(["scan", "--fail-on-leak", "--show", "all", "42"]) \
        == ["scan", "--fail-on-leak=0", "--show", "all", "42"]
    # A PID after it: first taken for BYTES, then the PID is missing, so it was the PID.
    done = leaktrace("detach", "--fail-on-leak", "999999999")
    assert_one_line_error(done, "no process with pid 999999999")


@pytest.mark.parametrize("command", [["report"], ["report", "--format", "json"], ["dump"]])
def test_reader_gone_is_141_and_quiet(command: list[str]) -> None:
    """`leaktrace report F | head`: the reader closes the pipe; leaktrace stops as a program
    killed by SIGPIPE would be seen by a shell (141), without an error line."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen([sys.executable, "-m", "leaktrace", *command, str(SAMPLE)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before Python has started: the first write fails
    assert process.wait(timeout=120) == exit_codes.BROKEN_PIPE == 141
    assert process.stderr.read() == b""


def test_top_level_help_states_the_policy_and_whole_descriptions() -> None:
    text = leaktrace("--help").stdout
    commands = text[text.index("Commands:"):text.index("Exit status")]
    assert "..." not in commands
    for command in COMMANDS:
        assert f"\n  {command} " in commands
    for line in exit_codes.POLICY_TEXT.splitlines():
        assert line in text
    # Every variable the shim or leaktrace reads, found in their sources, but the three
    # leaktrace sets for the shim (docs/architecture.md, "Launcher-shim contract").
    sources = [*(SRC.parent / "shim").glob("*.c"), *(SRC / "leaktrace").rglob("*.py")]
    read = {name for path in sources
            for name in re.findall(r'"(LEAKTRACE_[A-Z_]+)"', path.read_text())}
    assert len(read) > 10
    for variable in read - {"LEAKTRACE_NOTIFY", "LEAKTRACE_LAUNCHER_PID", "LEAKTRACE_SESSION"}:
        assert re.search(rf"^   [ *]{variable}=", text, re.MULTILINE), variable


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(command: str) -> None:
    text = leaktrace(command, "--help").stdout
    example = text.rsplit("Example: ", 1)[1].strip()
    assert example.startswith(f"leaktrace {command}")


def test_help_states_max_depth_default_and_the_kind_options_with_scan() -> None:
    assert "[default: 64]" in leaktrace("run", "--help").stdout
    # attach's leak-kind options act through --scan (a capture at detach with kinds).
    attach = leaktrace("attach", "--help").stdout
    for option in ("--scan", "--show ", "--fail-on-kinds", "--fail-on-leak"):
        assert option in attach
    scan = leaktrace("scan", "--help").stdout
    for option in ("--show ", "--suppressions", "--fail-on-leak"):
        assert option in scan


def test_hint_names_leaktrace_as_it_was_started(tmp_path: Path) -> None:
    assert leaktrace_command("/usr/lib/python3/dist-packages/leaktrace/__main__.py",
                             "/no/such/python3") == "/no/such/python3 -m leaktrace"
    script = tmp_path / "venv-bin-leaktrace"
    script.write_text("#!/bin/sh\n")
    assert leaktrace_command(str(script)) == str(script)
    os.chdir(tmp_path)
    assert leaktrace_command(str(script)) == "venv-bin-leaktrace"


def test_error_hints_name_leaktrace_as_it_was_started() -> None:
    """Not only run's closing hint: an error that suggests a command names it as started."""
    done = leaktrace("status", str(os.getpid()))  # this test process is not traced
    line = assert_one_line_error(done, "not traced by leaktrace")
    assert re.search(r"\(start it with `\S*python\S* -m leaktrace run`", line), line


def test_run_hint_works_when_pasted(tmp_path: Path) -> None:
    """The closing hint of `run`, pasted into a shell as is, re-opens the capture."""
    program = compile_source(tmp_path, "leaky.c", "#include <stdlib.h>\n"
                             "__attribute__((noinline)) void lose(void) {\n"
                             "  char *volatile p = malloc(5); p[0] = 1; }\n"
                             "int main(void) { lose(); return 4; }\n")
    # The installed package: it has the shim.
    done = subprocess.run([sys.executable, "-m", "leaktrace", "run", "--", str(program)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 4, done.stderr  # the program's own status
    (hint,) = [line for line in done.stderr.splitlines() if "to see it again:" in line]
    command = hint.split("to see it again: ", 1)[1]
    assert command.startswith(f"{shlex.quote(sys.executable)} -m leaktrace report ")
    again = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert "definitely lost: 5 bytes in 1 blocks" in again.stdout


CRASHES_WITH_A_LEAK = """#include <signal.h>
#include <stdlib.h>
__attribute__((noinline)) void lose(void) { char *volatile p = malloc(5); p[0] = 1; }
int main(int argc, char **argv) { lose(); if (argc > 1) raise(SIGSEGV); return 3; }
"""


@pytest.mark.parametrize(("gate", "exit_code", "why"), [
    ("--fail-on-leak", exit_codes.LEAKS_FOUND, "--fail-on-leak exceeded"),
    ("--error-exitcode=7", 7, "--error-exitcode: the run had memory errors")])
@pytest.mark.parametrize("tool", ["run", "valgrind"])
def test_fail_on_leak_leaves_a_crash_its_signal(tmp_path: Path, tool: str, gate: str,
                                                exit_code: int, why: str) -> None:
    """A leak gate never hides a crash: valgrind's --error-exitcode leaves a program's death
    by signal alone, and so do run and valgrind with --fail-on-leak or --error-exitcode. A
    program that exits with leaks gets the gate's exit code (a definitely lost block is an
    error for --error-exitcode, as for valgrind's with --leak-check=full)."""
    if tool == "valgrind" and shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    program = compile_source(tmp_path, "crashes.c", CRASHES_WITH_A_LEAK)

    def under_tool(*args: str) -> subprocess.CompletedProcess[str]:
        # The installed package: it has the shim.
        return subprocess.run([sys.executable, "-m", "leaktrace", tool, gate, "--",
                               str(program), *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300, check=False)

    crashed = under_tool("crash")
    assert crashed.returncode == -signal.SIGSEGV, crashed.stderr
    assert "5 bytes in 1 blocks are definitely lost" in crashed.stderr + crashed.stdout
    assert (f"{why}, but the program was killed by SIGSEGV: that decides "
            "the exit status") in crashed.stderr
    exited = under_tool()
    assert exited.returncode == exit_code, exited.stderr


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`leaktrace COMMAND --help` is where the options are documented (and the man pages are
    made from it): an option without a help text is an undocumented option (mem's and watch's
    --format had none)."""
    from leaktrace.cli import main

    bare = [f"{name} {option.opts[0]}" for name, command in main.commands.items()
            for option in command.params
            if isinstance(option, click.Option) and not option.help]
    assert bare == []
