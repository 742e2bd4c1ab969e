"""Terminal niceties: colour in the text report on a terminal only (NO_COLOR respected), shell
completion as the README documents it, and the man pages generated from the CLI's help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from export_helpers import build, capture, tool
from leakharness import LEAKTRACE, leaktrace
from liveharness import wait_for_control_socket

ROOT = Path(__file__).resolve().parent.parent
RED = "\x1b[1;31m"


@pytest.fixture(scope="module")
def leaks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("terminal")
    return capture(build(work), 2, work)


@pytest.fixture(scope="module")
def leaks_copy(leaks: Path) -> Path:
    """Another file with the same capture: merge refuses one file named twice."""
    import shutil

    return Path(shutil.copyfile(leaks, leaks.with_name("copy-" + leaks.name)))


def on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment["TERM"] = "xterm"
    child = pexpect.spawn(LEAKTRACE[0], [*LEAKTRACE[1:], *args], env={**environment,
                          **(env or {})}, encoding="utf-8", timeout=120,
                          dimensions=(50, 300))
    child.expect(pexpect.EOF)
    child.close()
    return str(child.before)


def test_colour_on_a_terminal(leaks: Path) -> None:
    text = on_terminal("report", str(leaks))
    assert f"{RED}2,000 bytes in 2 blocks are definitely lost" not in text  # one per record
    assert f"{RED}1,000 bytes in 1 blocks are definitely lost in loss record" in text
    assert "\x1b[1m== Summary ==\x1b[0m" in text
    assert "#0  \x1b[1mleak_small\x1b[0m  " in text


def test_no_colour_with_no_color_or_off_a_terminal(leaks: Path) -> None:
    assert "\x1b[" not in on_terminal("report", str(leaks), env={"NO_COLOR": "1"})
    assert "\x1b[" not in on_terminal("report", str(leaks), env={"TERM": "dumb"})
    piped = leaktrace("report", str(leaks))
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
    assert "are definitely lost" in piped.stdout
    assert "\x1b[" not in on_terminal("report", str(leaks), "--format", "json")


def test_run_colours_its_report_on_a_terminal(leaks: Path) -> None:
    exe = leaks.parent / "export_leaks-O2"
    text = on_terminal("run", "-o", str(leaks.parent / "tty.lt"), "--", str(exe), "1")
    assert f"{RED}1,000 bytes in 1 blocks are definitely lost" in text


def _bash_completion(words: list[str]) -> list[str]:
    """What bash offers after the README's completion line, for the words typed so far
    (the last one being completed)."""
    bash = tool("bash", "bash")
    leaktrace_bin = Path(sys.executable).parent / "leaktrace"
    script = (f'eval "$(_LEAKTRACE_COMPLETE=bash_source {leaktrace_bin})"\n'
              f"COMP_WORDS=({' '.join(words)} ''); COMP_CWORD={len(words)}\n"
              "_leaktrace_completion leaktrace  # bash passes the command name\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{leaktrace_bin.parent}:"
                               f"{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_offers_commands_and_formats() -> None:
    assert {"diff", "merge", "report", "run"} <= set(_bash_completion(["leaktrace"]))
    formats = _bash_completion(["leaktrace", "report", "x.lt", "--format"])
    assert {"text", "json", "html", "pprof", "speedscope", "folded", "valgrind-xml"} == set(formats)


def test_man_pages_are_generated_from_the_cli(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_man_pages.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    assert done.returncode == 0, done.stderr
    from leaktrace.cli import main

    pages = {p.name for p in tmp_path.glob("*.1")}
    assert pages == {"leaktrace.1"} | {f"leaktrace-{name}.1" for name in main.commands}
    man = tool("man", "man-db")
    rendered = subprocess.run([man, "-l", str(tmp_path / "leaktrace-report.1")],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "MANWIDTH": "120", "MAN_KEEP_FORMATTING": ""})
    assert rendered.returncode == 0, rendered.stderr
    assert "leaktrace report [OPTIONS] [FILE]" in rendered.stdout
    assert "[text|json|folded|speedscope|pprof|html|valgrind-xml]" in rendered.stdout
    assert "2023-11-14" in rendered.stdout  # SOURCE_DATE_EPOCH
    top = subprocess.run([man, "-l", str(tmp_path / "leaktrace.1")], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "MANWIDTH": "120"}).stdout
    assert "leaktrace-diff(1)" in top and "leaktrace-merge(1)" in top


@pytest.mark.parametrize("command", ["report", "diff", "merge"])
def test_binary_pprof_is_never_written_to_a_terminal(leaks: Path, leaks_copy: Path,
                                                     command: str) -> None:
    environment = {**os.environ, "TERM": "xterm"}
    inputs = [str(leaks)] if command == "report" else [str(leaks), str(leaks_copy)]
    child = pexpect.spawn(LEAKTRACE[0], [*LEAKTRACE[1:], command, *inputs, "--format",
                                         "pprof"], env=environment, encoding="utf-8",
                          timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert str(child.before).strip() == ("leaktrace: error: this format is binary: write it "
                                         "to a file with -o FILE, or pipe it")


def test_diff_colours_growth_red_on_a_terminal(leaks: Path) -> None:
    more = capture(leaks.parent / "export_leaks-O2", 4, leaks.parent, "more.lt")
    text = on_terminal("diff", str(leaks), str(more))
    assert f"{RED}GREW +48 bytes (+2 blocks)" in text
    assert "#0  \x1b[1mleak_small\x1b[0m  " in text
    assert "\x1b[" not in leaktrace("diff", str(leaks), str(more)).stdout


def _flags(text: str) -> set[str]:
    """Every option name (-o, --output, ...) that starts an entry of an options list."""
    return {flag for entry in re.findall(r"^ +(-[^ ].*?)(?:  |$)", text, re.M)
            for flag in re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", entry.split(" [")[0])}


def test_man_pages_say_what_help_says(tmp_path: Path) -> None:
    """Each command's man page lists the options --help lists, its description, and the
    text after the options (leaktrace(1): exit statuses and environment; the commands:
    their example)."""
    from leaktrace.cli import main

    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_man_pages.py"), str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    man = tool("man", "man-db")
    for name in ["", *main.commands]:
        words = [name] if name else []
        page = tmp_path / ("leaktrace.1" if not name else f"leaktrace-{name}.1")
        rendered = subprocess.run([man, "-l", str(page)], capture_output=True, text=True,
                                  timeout=60, env={**os.environ, "MANWIDTH": "250"}).stdout
        help_text = leaktrace(*words, "--help").stdout
        options = help_text.split("\nOptions:\n", 1)[1].split("\nCommands:\n")[0]
        options = re.split(r"\n(?=\S)", options, maxsplit=1)[0]  # up to the epilog
        man_options = rendered.split("\nOPTIONS\n", 1)[1] if "\nOPTIONS\n" in rendered else ""
        man_options = re.split(r"\n(?=[A-Z]{3,})", man_options, maxsplit=1)[0]
        assert _flags(options) - {"-h", "--help"} == _flags(man_options), name
        assert " ".join(help_text.split("\n\n")[1].split()) in " ".join(rendered.split()), name
        epilog = main.epilog if not name else main.commands[name].epilog
        for line in (epilog or "").replace("\b\n", "").strip().splitlines():
            assert line.strip() in rendered, (name, line)


def test_zsh_and_fish_completion_lines_give_their_scripts() -> None:
    """The README's zsh and fish lines: the script each shell sources, for this program."""
    leaktrace_bin = str(Path(sys.executable).parent / "leaktrace")
    for shell, registers in (("zsh", "compdef _leaktrace_completion leaktrace"),
                             ("fish", "complete --no-files --command leaktrace")):
        done = subprocess.run([leaktrace_bin], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "_LEAKTRACE_COMPLETE": f"{shell}_source"})
        assert done.returncode == 0 and registers in done.stdout, (shell, done.stdout)
    # What those scripts ask the program when TAB is pressed (zsh: the words and the index
    # of the one completed; fish: the line so far and the current token), and its answers.
    def answers(shell: str, line: str, current: str) -> list[str]:
        done = subprocess.run([leaktrace_bin], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "_LEAKTRACE_COMPLETE": f"{shell}_complete",
                                   "COMP_WORDS": line, "COMP_CWORD": current})
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    formats = ["text", "json", "folded", "speedscope", "pprof", "html", "valgrind-xml"]
    zsh = answers("zsh", "leaktrace report x.lt --format ", "4")
    assert zsh == [line for f in formats for line in ("plain", f, "_")]
    fish = answers("fish", "leaktrace report x.lt --format ", "")
    assert fish == [f"plain,{f}" for f in formats]
    assert [a.split("\t")[0] for a in answers("fish", "leaktrace me", "me")] == [
        "plain,mem", "plain,merge"]


def test_merge_and_mtrace_text_reports_are_coloured_on_a_terminal_only(leaks: Path,
                                                                       leaks_copy: Path) -> None:
    from companion_helpers import compile_c
    from export_helpers import run_tool
    from test_exports import MTRACE_PROGRAM

    text = on_terminal("merge", str(leaks), str(leaks_copy))
    assert f"{RED}4,000 bytes in 4 blocks are definitely lost in loss record" in text
    assert "\x1b[" not in on_terminal("merge", str(leaks), str(leaks_copy),
                                      env={"NO_COLOR": "1"})
    assert "\x1b[" not in leaktrace("merge", str(leaks), str(leaks_copy)).stdout

    exe = compile_c(leaks.parent, MTRACE_PROGRAM, "mtrace_colour")
    log = leaks.parent / "colour-mtrace.log"
    ran = run_tool(str(exe), env={**os.environ, "MALLOC_TRACE": str(log),
                                  "LD_PRELOAD": "libc_malloc_debug.so.0"})
    assert ran.returncode == 0, ran.stderr
    text = on_terminal("mtrace", str(exe), str(log), "--format", "text")
    assert "#0  \x1b[1mleak_small\x1b[0m  " in text
    # No colour (SGR) sequence; the progress bar still moves the cursor on a terminal.
    assert not re.search(r"\x1b\[[\d;]*m", on_terminal("mtrace", str(exe), str(log), "--format",
                                                       "text", env={"NO_COLOR": "1"}))
    piped = leaktrace("mtrace", str(exe), str(log), "--format", "text").stdout
    assert "leak_small" in piped and "\x1b[" not in piped


LOSE_THEN_SLEEP = r"""
#include <stdlib.h>
#include <unistd.h>
void * volatile sink;
#include <string.h>
__attribute__((noinline)) static void lose(void)
{
    sink = malloc(1000);
    sink = 0;
}
__attribute__((noinline)) static void scrub(void)
{
    volatile char stack[4096];
    memset((char *)stack, 0, sizeof stack); /* no stale copy of the address below */
}
int main(void) { lose(); scrub(); sleep(60); return 0; }
"""


def test_valgrind_and_scan_reports_are_coloured_on_a_terminal_only(leaks: Path,
                                                                   tmp_path: Path) -> None:
    import signal

    from companion_helpers import compile_c

    exe = leaks.parent / "export_leaks-O2"
    text = on_terminal("valgrind", "--", str(exe), "1")
    assert f"{RED}1,000 bytes in 1 blocks are definitely lost in loss record" in text
    assert "\x1b[" not in on_terminal("valgrind", "--", str(exe), "1", env={"NO_COLOR": "1"})

    sleeper = compile_c(tmp_path, LOSE_THEN_SLEEP, "lose_then_sleep")
    control = tmp_path / "control"
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(control)}
    run = subprocess.Popen([*LEAKTRACE, "run", "--", str(sleeper)], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid = str(wait_for_control_socket(control))
        text = on_terminal("scan", pid, env={"LEAKTRACE_CONTROL_DIR": str(control)})
        assert f"{RED}1,000 bytes in 1 blocks are definitely lost in loss record" in text
        piped = subprocess.run([*LEAKTRACE, "scan", pid], env=env, capture_output=True,
                               text=True, timeout=60, check=False)
        assert "1,000 bytes in 1 blocks are definitely lost" in piped.stdout, piped.stderr
        assert "\x1b[" not in piped.stdout
    finally:
        for sock in control.glob("*.sock") if control.exists() else []:
            os.kill(int(sock.name.split(".")[0]), signal.SIGKILL)
        run.kill()
        run.wait()
