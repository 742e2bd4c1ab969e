"""Run a program under valgrind memcheck with leak checking and XML output."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from leaktrace.errors import LeaktraceError
from leaktrace.launcher.supervise import run_supervised, shell_status

# Full leak check, deep stacks, origins of uninitialised values, and full source paths
# (--fullpath-after= with nothing after it keeps every path whole). All leak kinds are
# shown so that "still reachable" records reach the report; a later --valgrind-arg such as
# --show-leak-kinds=definite overrides it, valgrind taking the last value.
# The program is followed through exec, as `run` follows it (a script, or a wrapper such as
# pyenv's shims, execs the real program): valgrind can only do so with --trace-children=yes,
# which also puts the program's children under valgrind; --child-silent-after-fork keeps the
# forked ones quiet, and the XML file is per process (%p), so only the launched process's
# file (exec keeps the pid) is read.
MEMCHECK_ARGS = (
    "--tool=memcheck",
    "--leak-check=full",
    "--show-leak-kinds=all",
    "--num-callers=40",
    "--track-origins=yes",
    "--fullpath-after=",
    "--trace-children=yes",
    "--child-silent-after-fork=yes",
)

INSTALL_HINT = (
    "valgrind is not installed (Debian/Ubuntu: apt-get install valgrind; Fedora: dnf install "
    "valgrind); `leaktrace run` finds leaks without it"
)


@dataclass
class ValgrindRun:
    xml_path: str
    log_path: str
    returncode: int  # the program's, as subprocess gives it: the exit code, or -N for signal N


def find_valgrind() -> str:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise LeaktraceError(INSTALL_HINT)
    return valgrind


def check_program(program: str) -> None:
    """Fail early, with a clear message, for a program valgrind could not start."""
    path = program if "/" in program else shutil.which(program)
    if path is None:
        raise LeaktraceError(f"{program}: command not found")
    if not os.path.exists(path):
        raise LeaktraceError(f"{program}: no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise LeaktraceError(f"{program}: not an executable file")


def run_memcheck(command: list[str], extra_args: list[str], workdir: str) -> ValgrindRun:
    """Run `command` under memcheck, valgrind's files in `workdir`; the program's own
    stdin/stdout/stderr stay connected."""
    valgrind = find_valgrind()
    check_program(command[0])
    arguments = [
        valgrind,
        *MEMCHECK_ARGS,
        *extra_args,
        f"--log-file={workdir}/valgrind.%p.log",
        "--xml=yes",
        f"--xml-file={workdir}/memcheck.%p.xml",
        "--",
        *command,
    ]
    # Supervised as `run` does: Ctrl-C goes to the program, and leaktrace survives it to
    # print the report. valgrind ends as the program did (its status, or the same signal).
    returncode, pid = run_supervised(arguments, valgrind, os.environ)
    xml_path, log_path = f"{workdir}/memcheck.{pid}.xml", f"{workdir}/valgrind.{pid}.log"
    if not os.path.exists(xml_path) or os.path.getsize(xml_path) == 0:
        raise LeaktraceError(
            f"valgrind did not run {command[0]} (exit status {shell_status(returncode)}); "
            f"{_first_log_line(log_path) or 'see its message above'}"
        )
    return ValgrindRun(xml_path, log_path, returncode)


def _first_log_line(log_path: str) -> str | None:
    try:
        with open(log_path, errors="replace") as log:
            for line in log:
                text = line.strip().lstrip("=0123456789").strip()
                if text:
                    return text
    except OSError:
        pass
    return None
