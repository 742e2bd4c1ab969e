"""valgrind memcheck XML as a leaktrace source: real valgrind runs on a program whose leaks
are known exactly, checked against valgrind's own text summary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from companion_helpers import assert_one_line_error, compile_c, marker_line, run_cli

from leaktrace.errors import LeaktraceError
from leaktrace.sources import valgrind_xml
from leaktrace.sources.detect import load_any, sniff

VALGRIND = shutil.which("valgrind") or ""
needs_valgrind = pytest.mark.skipif(
    not VALGRIND, reason="valgrind is not installed (apt-get install valgrind)"
)

PROGRAM = r"""
#include <stdlib.h>
struct node { struct node *next; char pad[24]; };   /* 32 bytes */
void * volatile reachable;
void * volatile interior;
__attribute__((noinline)) void lose_plain(void) {
  char * volatile p = malloc(100); /* DEFINITE */
  p[0] = 1;
}
__attribute__((noinline)) void lose_list(void) {
  struct node * volatile head = malloc(sizeof *head); /* LIST_HEAD */
  head->next = malloc(sizeof *head); /* LIST_TAIL */
  head->next->next = NULL;
}
__attribute__((noinline)) void keep_interior(void) {
  char *block = malloc(200); /* POSSIBLE */
  interior = block + 10;
}
__attribute__((noinline)) void keep_reachable(void) {
  reachable = calloc(4, 16); /* REACHABLE */
}
int main(void) {
  for (int i = 0; i < 3; i++) lose_plain();
  lose_list();
  keep_interior();
  keep_reachable();
  return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(tmp_path_factory.mktemp("valgrind"), PROGRAM, "leaky")


@pytest.fixture(scope="module")
def xml_file(program: Path) -> Path:
    if not VALGRIND:
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    xml = program.parent / "memcheck.xml"
    result = run_cli(
        "valgrind", "--xml-file", str(xml), "--format", "json", "-o", "-", "--", str(program),
        timeout=300
    )
    assert result.returncode == 0, result.stderr  # the program's own status
    assert "Traceback" not in result.stderr
    json.loads(result.stdout)
    return xml


@needs_valgrind
def test_records_have_exact_kinds_bytes_and_lines(xml_file: Path, program: Path) -> None:
    report = valgrind_xml.load(str(xml_file))
    source = program.with_suffix(".c")
    found = {
        (
            r.leak_kind,
            r.kind,
            r.bytes,
            r.blocks,
            r.indirect_bytes,
            f"{r.frames[0].file}:{r.frames[0].line}",
        )
        for r in report.records
    }
    assert found == {
        ("definitely lost", "malloc", 300, 3, 0, f"{source}:{marker_line(PROGRAM, 'DEFINITE')}"),
        ("definitely lost", "malloc", 64, 1, 32, f"{source}:{marker_line(PROGRAM, 'LIST_HEAD')}"),
        ("indirectly lost", "malloc", 32, 1, 0, f"{source}:{marker_line(PROGRAM, 'LIST_TAIL')}"),
        ("possibly lost", "malloc", 200, 1, 0, f"{source}:{marker_line(PROGRAM, 'POSSIBLE')}"),
        ("still reachable", "calloc", 64, 1, 0, f"{source}:{marker_line(PROGRAM, 'REACHABLE')}"),
    }
    assert sorted(r.loss_record or 0 for r in report.records) == [1, 2, 3, 4, 5]
    definite = next(r for r in report.records if r.bytes == 300)
    assert [f.function for f in definite.frames] == ["lose_plain", "main"]
    assert definite.frames[0].module == str(program)
    assert all(f.address for f in definite.frames)
    assert report.source == "valgrind"
    assert report.command == [str(program)]


def _valgrind_leak_summary(program: Path, *valgrind_args: str) -> list[str]:
    """The LEAK SUMMARY lines of valgrind's own text output, without the ==pid== prefix."""
    return _valgrind_text([str(program)], *valgrind_args)[0]


def _valgrind_text(argv: list[str], *valgrind_args: str,
                   env: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """valgrind's own text output of a leak check: (its five LEAK SUMMARY lines, its
    "... in loss record N of M" lines), without the ==pid== prefix."""
    text = subprocess.run(
        [VALGRIND, "--leak-check=full", *valgrind_args, *argv],
        capture_output=True, text=True, check=False, env=env,
    ).stderr
    lines = [re.sub(r"^==\d+== ?", "", line) for line in text.splitlines()]
    start = len(lines) - 1 - lines[::-1].index("LEAK SUMMARY:")  # the one at exit
    records = [line for line in lines if " in loss record " in line]
    return [line for line in lines[start + 1:start + 6] if ":" in line], records


@needs_valgrind
def test_summed_totals_match_valgrinds_text_summary(xml_file: Path, program: Path) -> None:
    expected = {}
    for line in _valgrind_leak_summary(program, "--show-leak-kinds=all"):
        match = re.fullmatch(r"\s*([a-z ]+): ([\d,]+) bytes in ([\d,]+) blocks", line)
        assert match, line
        expected[match[1]] = (int(match[2].replace(",", "")), int(match[3].replace(",", "")))
    summary = valgrind_xml.load(str(xml_file)).summary
    assert summary.leaks is not None and not summary.leaks.unknown_kinds
    for kind in ("definitely lost", "indirectly lost", "possibly lost", "still reachable"):
        total = summary.leaks.of(kind)
        assert (total.bytes, total.blocks) == expected[kind], kind
    assert expected["suppressed"] == (0, 0)


@needs_valgrind
def test_text_report_prints_valgrinds_leak_summary(xml_file: Path, program: Path) -> None:
    result = run_cli("report", str(xml_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ours = lines[lines.index("LEAK SUMMARY:") + 1:][:5]
    assert ours == _valgrind_leak_summary(program, "--show-leak-kinds=all")
    assert "counters" not in result.stdout and "note:" not in result.stdout
    assert "in loss record 5 of 5" in result.stdout


@needs_valgrind
def test_kinds_valgrind_left_out_are_unknown(program: Path, tmp_path: Path) -> None:
    xml = tmp_path / "default-kinds.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--xml=yes", f"--xml-file={xml}",
                    str(program)], capture_output=True, check=False)
    report = valgrind_xml.load(str(xml))
    assert report.summary.leaks is not None
    assert report.summary.leaks.unknown_kinds == {"indirectly lost", "still reachable"}
    assert report.loss_records_total == 5  # valgrind numbers the records it left out too
    text = run_cli("report", str(xml)).stdout
    summary = text[text.index("LEAK SUMMARY:"):]
    assert "   definitely lost: 332 bytes in 4 blocks" in summary
    assert "   indirectly lost: unknown (not in the valgrind output" in summary
    assert "     possibly lost: 200 bytes in 1 blocks" in summary
    assert "   still reachable: unknown (not in the valgrind output" in summary
    data = json.loads(run_cli("report", "--format", "json",
                              str(xml)).stdout)["summary"]
    assert data["definitely_lost"] == {"bytes": 332, "blocks": 4}
    assert data["possibly_lost"] == {"bytes": 200, "blocks": 1}
    assert data["indirectly_lost"] is None and data["still_reachable"] is None
    # The leak gate cannot count what valgrind left out, and says so.
    gate = run_cli("report", "--fail-on-leak=331", "--fail-on-kinds", "all", str(xml))
    assert gate.returncode == 99  # 332 definitely lost
    assert ("leaktrace: warning: --fail-on-leak: indirectly lost, still reachable unknown "
            "(not in the valgrind output), not counted") in gate.stderr


@needs_valgrind
def test_errors_valgrind_suppressed_are_counted(program: Path, xml_file: Path,
                                                tmp_path: Path) -> None:
    supp = tmp_path / "plain.supp"
    supp.write_text("{\n   plain\n   Memcheck:Leak\n   match-leak-kinds: definite\n"
                    "   fun:malloc\n   fun:lose_plain\n}\n")
    xml = tmp_path / "suppressed.xml"
    result = run_cli("valgrind", f"--valgrind-arg=--suppressions={supp}", "--xml-file",
                     str(xml), "--", str(program), timeout=300)
    assert result.returncode == 0, result.stderr
    report = valgrind_xml.load(str(xml))
    assert report.summary.source_suppressed_errors == 1  # one loss record of 3 blocks
    # What is left: the list (64 with 32 indirect, its 32-byte tail), the possible and
    # the reachable block; the suppressed 300 bytes are nowhere.
    assert sorted(r.bytes for r in report.records) == [32, 64, 64, 200]
    # valgrind's own text says "suppressed: 300 bytes in 3 blocks"; its XML only counts the
    # record, so the size is unknown, never 0.
    assert ("        suppressed: unknown (valgrind suppressed 1 error itself, its output gives "
            "no sizes)\n") in result.stderr
    # leaktrace's own suppressions of the same XML have sizes.
    ours = run_cli("report", "--suppressions", str(supp), str(xml_file))
    assert "        suppressed: 300 bytes in 3 blocks\n" in ours.stdout, ours.stderr


@needs_valgrind
def test_text_output_and_clean_exit(tmp_path: Path) -> None:
    clean = compile_c(tmp_path, "#include <stdlib.h>\nint main(void){free(malloc(8));return 0;}\n")
    result = run_cli("valgrind", "--", str(clean), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "No loss records: valgrind reported no leak" in result.stderr
    assert "   definitely lost: 0 bytes in 0 blocks" in result.stderr


@needs_valgrind
def test_extra_valgrind_arguments_are_passed(program: Path, tmp_path: Path) -> None:
    xml = tmp_path / "definite.xml"
    result = run_cli(
        "valgrind",
        "--valgrind-arg=--show-leak-kinds=definite",
        "--xml-file",
        str(xml),
        "--",
        str(program),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    kinds = {r.leak_kind for r in valgrind_xml.load(str(xml)).records}
    assert kinds == {"definitely lost"}


@needs_valgrind
def test_program_exit_status_is_kept(tmp_path: Path) -> None:
    failing = compile_c(tmp_path, "int main(void){return 3;}\n")
    assert run_cli("valgrind", "--", str(failing), timeout=300).returncode == 3


@needs_valgrind
def test_program_killed_by_a_signal_ends_leaktrace_the_same_way(tmp_path: Path) -> None:
    killed = compile_c(tmp_path, "#include <signal.h>\n#include <unistd.h>\n"
                       "int main(void){kill(getpid(), SIGTERM);return 0;}\n")
    result = run_cli("valgrind", "--", str(killed), timeout=300)
    assert result.returncode == -15, result.stderr  # killed by SIGTERM, after the report
    assert "was killed by SIGTERM" in result.stderr
    assert "LEAK SUMMARY:" in result.stderr


@needs_valgrind
def test_fail_on_leak_gives_the_leak_exit_code(program: Path) -> None:
    result = run_cli("valgrind", "--fail-on-leak=531", "--", str(program), timeout=300)
    assert result.returncode == 99, result.stderr  # 332 definite + 200 possible > 531
    result = run_cli("valgrind", "--fail-on-leak=532", "--", str(program), timeout=300)
    assert result.returncode == 0, result.stderr


@needs_valgrind
def test_detect_opens_valgrind_xml(xml_file: Path) -> None:
    assert sniff(str(xml_file)) == "valgrind"
    assert load_any(str(xml_file)).summary.live_bytes == 300 + 32 + 32 + 200 + 64


def test_detect_opens_a_capture(tmp_path: Path) -> None:
    writer = pytest.importorskip("leaktrace.capture.writer")
    pytest.importorskip("leaktrace.analyze.build_report")
    capture = tmp_path / "empty.ltc"
    capture.write_bytes(writer.encode_capture(writer.make_header()))
    assert sniff(str(capture)) == "capture"
    assert load_any(str(capture)).source == "leaktrace"


def test_detect_rejects_unknown_files(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(LeaktraceError, match="unknown format"):
        load_any(str(other))
    with pytest.raises(LeaktraceError, match="cannot read"):
        load_any(str(tmp_path / "missing.xml"))


HEAD = '<?xml version="1.0"?>\n<valgrindoutput>\n<protocolversion>4</protocolversion>\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (HEAD + "<protocoltool>memcheck</protocoltool>\n<error><kind>Leak_Def", "ends early"),
        (HEAD + "<protocoltool>memcheck</protocoltool><a></b></valgrindoutput>", "not valid XML"),
        (HEAD + "<protocoltool>helgrind</protocoltool></valgrindoutput>", "helgrind"),
        ('<?xml version="1.0"?><svg></svg>', "not valgrind output"),
        # Counts no valgrind writes: a negative total made the summary negative and passed
        # --fail-on-leak; a 26-digit one made a pprof file go tool pprof cannot read.
        *((HEAD + "<protocoltool>memcheck</protocoltool><error><kind>Leak_DefinitelyLost</kind>"
           f"<xwhat><text>x</text><leakedbytes>{value}</leakedbytes><leakedblocks>1"
           "</leakedblocks></xwhat></error></valgrindoutput>", f"holds '{value}', not a count")
          for value in ("-5000", "abc", "9" * 26)),
    ],
)
def test_malformed_xml_gives_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(valgrind_xml.ValgrindXmlError, match=message):
        valgrind_xml.load(str(path))


def test_thousands_separators_and_split_bytes(tmp_path: Path) -> None:
    path = tmp_path / "one.xml"
    path.write_text(
        HEAD
        + "<protocoltool>memcheck</protocoltool><pid>7</pid>"
        + "<error><unique>0x1</unique><tid>1</tid><kind>Leak_DefinitelyLost</kind><xwhat>"
        + "<text>1,064 (1,000 direct, 64 indirect) bytes in 10 blocks are definitely lost in"
        + " loss record 12 of 40</text><leakedbytes>1064</leakedbytes>"
        + "<leakedblocks>10</leakedblocks></xwhat><stack>"
        + "<frame><ip>0x483B7F3</ip><obj>/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"
        + "</obj><fn>operator new(unsigned long)</fn></frame>"
        + "<frame><ip>0x10915E</ip><obj>/bin/app</obj><fn>make()</fn><dir>/src</dir>"
        + "<file>app.cc</file><line>9</line></frame></stack></error></valgrindoutput>"
    )
    report = valgrind_xml.load(str(path))
    (record,) = report.records
    assert (record.kind, record.bytes, record.direct_bytes, record.indirect_bytes) == (
        "operator new(unsigned long)",
        1064,
        1000,
        64,
    )
    assert record.loss_record == 12
    assert (record.frames[0].file, record.frames[0].line) == ("/src/app.cc", 9)
    assert report.pid == 7
    assert any("did not finish" in note for note in report.notes)


def test_missing_valgrind_is_a_clear_error(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = dict(os.environ, PATH=str(empty_bin))
    result = subprocess.run(
        [sys.executable, "-m", "leaktrace", "valgrind", "--", "/bin/true"],
        capture_output=True,
        text=True,
        env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parent.parent / "src")),
        check=False,
    )
    assert_one_line_error(result, "valgrind is not installed")


@needs_valgrind
def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("valgrind", "--", str(tmp_path / "no-such-program")), "no such file"
    )


def test_report_command_opens_bad_xml_with_one_line_error(tmp_path: Path) -> None:
    if run_cli("report", "--help").returncode != 0:
        pytest.skip("the report command is not registered yet")
    bad = tmp_path / "bad.xml"
    bad.write_text(HEAD + "<protocoltool>memcheck</protocoltool><error>")
    assert_one_line_error(run_cli("report", str(bad)), "bad.xml")


@needs_valgrind
def test_report_command_opens_valgrind_xml(xml_file: Path) -> None:
    result = run_cli("report", str(xml_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("== leaktrace report (from valgrind) ==")


def _real_python() -> str:
    """The interpreter binary itself: a wrapper script (pyenv's shims) would exec it, and
    valgrind stops there."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


# Hash seeds fixed: perl's and Python's start-up allocations then repeat exactly, so the
# XML run and the text run of valgrind find the same blocks.
DETERMINISTIC = dict(os.environ, PERL_HASH_SEED="0", PYTHONHASHSEED="0")
REAL_PROGRAMS = {"python": ["-c", "pass"], "perl": ["-e", "1"]}
SUMMARY_LINE = re.compile(r"\s*([a-z ]+): ([\d,]+) bytes in ([\d,]+) blocks")


@needs_valgrind
@pytest.mark.parametrize("name", sorted(REAL_PROGRAMS))
@pytest.mark.parametrize("kinds", ["all", "definite"])
def test_real_programs_print_valgrinds_own_leak_summary(name: str, kinds: str,
                                                        tmp_path: Path) -> None:
    """Programs nobody here wrote: `report` of valgrind's XML prints the LEAK SUMMARY
    valgrind's text output gives for the same run, and its loss records in valgrind's words;
    with --show-leak-kinds=definite the other kinds are unknown, in text and JSON."""
    program = _real_python() if name == "python" else shutil.which("perl")
    if program is None:
        pytest.skip(f"{name} is not installed")
    argv = [program, *REAL_PROGRAMS[name]]
    xml = tmp_path / "memcheck.xml"
    subprocess.run([VALGRIND, "--leak-check=full", f"--show-leak-kinds={kinds}", "--xml=yes",
                    f"--xml-file={xml}", *argv], env=DETERMINISTIC, capture_output=True,
                   check=True, timeout=300)
    theirs, their_records = _valgrind_text(argv, f"--show-leak-kinds={kinds}",
                                           env=DETERMINISTIC)
    result = run_cli("report", "--show", "all", str(xml))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ours = lines[lines.index("LEAK SUMMARY:") + 1:][:5]
    data = json.loads(run_cli("report", "--format", "json", str(xml)).stdout)["summary"]
    expected = {}
    for line in theirs:
        match = SUMMARY_LINE.fullmatch(line)
        assert match, line
        expected[match[1]] = {"bytes": int(match[2].replace(",", "")),
                              "blocks": int(match[3].replace(",", ""))}
    if kinds == "all":
        assert ours == theirs
        for kind in ("definitely lost", "indirectly lost", "possibly lost", "still reachable"):
            assert data[kind.replace(" ", "_")] == expected[kind], kind
    else:
        assert ours[0] == theirs[0] and ours[4] == theirs[4]  # definitely lost, suppressed
        assert all(line.endswith(": unknown (not in the valgrind output; rerun valgrind with "
                                 "--show-leak-kinds=all)") for line in ours[1:4]), ours
        assert data["definitely_lost"] == expected["definitely lost"]
        assert data["indirectly_lost"] is data["possibly_lost"] is data["still_reachable"] is None
    assert sum(e["blocks"] for e in expected.values()) > 0  # something was compared
    # Every loss record valgrind printed, in its words, and nothing else.
    assert Counter(line for line in lines if " in loss record " in line) == Counter(their_records)
    assert "counters" not in result.stdout and "note:" not in result.stdout


THREAD_AT_EXIT = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static void *sleeper(void *arg) { (void)arg; pause(); return NULL; }
int main(void) {
  pthread_t thread;
  pthread_create(&thread, NULL, sleeper, NULL);
  usleep(100000);
  char * volatile lost = malloc(10);
  lost = NULL;
  return 0;
}
"""


@needs_valgrind
def test_leaktraces_default_list_is_not_applied_to_valgrinds_findings(tmp_path: Path) -> None:
    """A thread still running at exit: valgrind calls its thread vector (DTV) possibly lost,
    which leaktrace's default list suppresses in its own captures. valgrind's verdicts are
    shown as valgrind gave them, so the LEAK SUMMARY is its own."""
    program = compile_c(tmp_path, THREAD_AT_EXIT, "thread_at_exit", "-pthread")
    xml = tmp_path / "thread.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all", "--xml=yes",
                    f"--xml-file={xml}", str(program)], capture_output=True, check=True,
                   timeout=300)
    theirs = _valgrind_leak_summary(program, "--show-leak-kinds=all")
    assert SUMMARY_LINE.fullmatch(theirs[2]) and not theirs[2].endswith(": 0 bytes in 0 blocks")
    for command in (["report", str(xml)],
                    ["valgrind", "-o", "-", "--", str(program)]):
        result = run_cli(*command, timeout=300)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[lines.index("LEAK SUMMARY:") + 1:][:5] == theirs, command
    assert "--no-default-suppressions" not in run_cli("valgrind", "--help").stdout


EXEC_SCRIPT = '#!/bin/sh\nexec "$(dirname "$0")/leaky" "$@"\n'


@needs_valgrind
def test_a_program_that_execs_is_followed(program: Path, tmp_path: Path) -> None:
    """A wrapper script that execs the program (as pyenv's shims do): `leaktrace valgrind`
    reports the program it became, with its exit status; valgrind's own XML of such a run
    without --trace-children=yes stops at the exec, and `report` says why."""
    script = tmp_path / "wrapper.sh"
    script.write_text(EXEC_SCRIPT.replace('"$(dirname "$0")/leaky"', str(program)))
    script.chmod(0o755)
    result = run_cli("valgrind", "--format", "json", "-o", "-", "--", str(script), timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["program"] == str(program)
    assert data["summary"]["definitely_lost"] == {"bytes": 332, "blocks": 4}
    assert data["summary"]["still_reachable"] == {"bytes": 64, "blocks": 1}
    xml = tmp_path / "stopped.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--xml=yes", f"--xml-file={xml}",
                    str(script)], capture_output=True, check=True, timeout=300)
    assert_one_line_error(run_cli("report", str(xml)),
                          "stopped.xml: valgrind's output stops at line [0-9]+ while "
                          f"{script} was running: it exec'd another program")


MEMORY_ERRORS = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
  int sum = 0;
  for (int i = 0; i < 5; i++) {
    int *p = malloc(4);
    sum += p[1]; /* READ_PAST_END: five times, one context */
    free(p);
  }
  char * volatile c = malloc(3);
  c[3] = 0; /* WRITE_PAST_END */
  printf("%d\n", sum > 0);
  return 0;
}
"""


@needs_valgrind
def test_other_memory_errors_are_counted_as_valgrind_counts_them(tmp_path: Path) -> None:
    """valgrind writes an error context once, however often it happened: the note gives
    valgrind's own counts (<errorcounts>), which add up to its ERROR SUMMARY without the
    leak."""
    program = compile_c(tmp_path, MEMORY_ERRORS, "errors")
    xml = tmp_path / "errors.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--xml=yes", f"--xml-file={xml}",
                    str(program)], capture_output=True, check=True, timeout=300)
    text = subprocess.run([VALGRIND, "--leak-check=full", str(program)], capture_output=True,
                          text=True, check=True, timeout=300).stderr
    summary = re.search(r"ERROR SUMMARY: (\d+) errors from (\d+) contexts", text)
    assert summary and (int(summary[1]), int(summary[2])) == (5 + 1 + 1, 3)  # and the leak
    report = valgrind_xml.load(str(xml))
    assert report.notes == ["valgrind also reported 6 memory errors from 2 contexts: "
                            "InvalidRead x5, InvalidWrite x1"]
    assert [(r.leak_kind, r.bytes) for r in report.records] == [("definitely lost", 3)]


LEAK_CHECK_MID_RUN = r"""
#include <stdlib.h>
#include <valgrind/memcheck.h>
__attribute__((noinline)) void lose(size_t n) { char * volatile p = malloc(n); p[0] = 1; }
int main(void) {
  lose(10);
  lose(20);
  VALGRIND_DO_LEAK_CHECK;
  lose(30);
  return 0;
}
"""


@needs_valgrind
def test_a_leak_check_the_program_asked_for_is_not_added_in(tmp_path: Path) -> None:
    """VALGRIND_DO_LEAK_CHECK writes a first set of loss records into the XML; valgrind's
    LEAK SUMMARY is the one at exit, and so is the report's (it said 90 bytes in 5 blocks)."""
    if not Path("/usr/include/valgrind/memcheck.h").exists():
        pytest.skip("valgrind's client-request header is not installed")
    program = compile_c(tmp_path, LEAK_CHECK_MID_RUN, "mid_run")
    xml = tmp_path / "mid.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all", "--xml=yes",
                    f"--xml-file={xml}", str(program)], capture_output=True, check=True,
                   timeout=300)
    assert xml.read_text().count("<kind>Leak_DefinitelyLost</kind>") == 2 + 3
    theirs = _valgrind_leak_summary(program, "--show-leak-kinds=all")
    assert theirs[0] == "   definitely lost: 60 bytes in 3 blocks"
    result = run_cli("report", str(xml))
    lines = result.stdout.splitlines()
    assert lines[lines.index("LEAK SUMMARY:") + 1:][:5] == theirs
    assert "note: valgrind ran 2 leak checks (the program asked for the earlier ones): this " \
           "report is the last" in lines


@needs_valgrind
def test_heuristics_valgrind_does_not_write_are_unknown(tmp_path: Path) -> None:
    """valgrind's text summary says which still reachable blocks a heuristic reached; its XML
    does not. The totals per kind agree; the breakdown is null, never an empty {}."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    programs = Path(__file__).parent / "programs"
    program = tmp_path / "heuristics"
    subprocess.run(["g++", "-g", "-O0", f"-I{programs}", "-o", str(program),
                    str(programs / "leak_heuristics.cpp")], check=True, capture_output=True)
    xml = tmp_path / "heuristics.xml"
    subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all", "--xml=yes",
                    f"--xml-file={xml}", str(program), "stdstring"], capture_output=True,
                   check=True, timeout=300)
    text = subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all",
                           str(program), "stdstring"], capture_output=True, text=True,
                          check=True, timeout=300).stderr
    assert re.search(r"of which reachable via heuristic:\n==\d+== +stdstring +: [1-9]", text)
    reachable = re.search(r"still reachable: ([\d,]+) bytes in ([\d,]+) blocks", text)
    data = json.loads(run_cli("report", "--format", "json", str(xml)).stdout)["summary"]
    assert reachable and data["still_reachable"] == {
        "bytes": int(reachable[1].replace(",", "")), "blocks": int(reachable[2])}
    assert data["reachable_via_heuristic"] is None


@needs_valgrind
@pytest.mark.parametrize("leak_check", ["summary", "no"])
def test_leak_check_summary_or_no(program: Path, tmp_path: Path, leak_check: str) -> None:
    """valgrind's --leak-check=summary and =no: in XML mode valgrind still writes the loss
    records of its default kinds; the kinds it left out stay unknown, never 0."""
    xml = tmp_path / f"{leak_check}.xml"
    subprocess.run([VALGRIND, f"--leak-check={leak_check}", "--xml=yes", f"--xml-file={xml}",
                    str(program)], capture_output=True, check=True, timeout=300)
    data = json.loads(run_cli("report", "--format", "json", str(xml)).stdout)["summary"]
    records = xml.read_text().count("<kind>Leak_")
    if leak_check == "no" and records == 0:  # a valgrind that honours =no in XML mode
        assert all(data[kind] is None for kind in
                   ("definitely_lost", "indirectly_lost", "possibly_lost", "still_reachable"))
        return
    assert records == 3  # valgrind 3.19: the default kinds, as with --leak-check=full
    assert data["definitely_lost"] == {"bytes": 332, "blocks": 4}
    assert data["possibly_lost"] == {"bytes": 200, "blocks": 1}
    assert data["indirectly_lost"] is None and data["still_reachable"] is None


RECURSION = r"""
#include <stdlib.h>
void * volatile sink;
__attribute__((noinline)) void descend(int depth) {
  if (depth == 0) {
    sink = malloc(48); /* LEAF */
    sink = NULL;
    return;
  }
  descend(depth - 1); /* RECURSE */
  sink = NULL;
}
int main(void) { descend(3); return 0; }
"""


@needs_valgrind
@pytest.mark.parametrize("debug_info", ["-g", "-g0"])
def test_a_recursive_call_is_not_taken_for_an_inlined_one(tmp_path: Path,
                                                          debug_info: str) -> None:
    """Returning to the same call site, recursion repeats a frame's address as inlining does;
    only the debug info's different name or line makes a frame inlined."""
    program = compile_c(tmp_path, RECURSION, "recurse", debug_info)
    xml = tmp_path / "memcheck.xml"
    result = run_cli("valgrind", "--xml-file", str(xml), "--format", "json", "--",
                     str(program), timeout=300)
    assert result.returncode == 0, result.stderr
    [record] = valgrind_xml.load(str(xml)).records
    assert (record.bytes, record.blocks, record.leak_kind) == (48, 1, "definitely lost")
    names = [frame.function for frame in record.frames]
    assert names == ["descend"] * 4 + ["main"]
    assert not any(frame.inlined for frame in record.frames)
    if debug_info == "-g":
        lines = [frame.line for frame in record.frames[:4]]
        assert lines == [marker_line(RECURSION, "LEAF")] + [marker_line(RECURSION, "RECURSE")] * 3


@needs_valgrind
def test_the_programs_stdout_stays_its_own(tmp_path: Path) -> None:
    """The report goes to stderr, as valgrind's own does, so `leaktrace valgrind -- PROG > out`
    leaves out what PROG wrote, and nothing else; `-o -` asks for stdout."""
    program = compile_c(tmp_path, "#include <stdio.h>\n#include <stdlib.h>\n"
                        "void *volatile sink;\n"
                        "int main(void){sink = malloc(9); sink = 0; puts(\"out\"); return 0;}\n")
    result = run_cli("valgrind", "--", str(program), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out\n"
    assert "   definitely lost: 9 bytes in 1 blocks" in result.stderr
    to_stdout = run_cli("valgrind", "--format", "json", "-o", "-", "--", str(program),
                        timeout=300)
    assert to_stdout.stdout.startswith("out\n{")
    binary = run_cli("valgrind", "--format", "pprof", "--", str(program), timeout=300)
    assert binary.returncode == 2
    assert_one_line_error(binary, "--format pprof needs -o FILE")


def _sites(frames: list[dict[str, object]], source: str) -> list[tuple[object, object]]:
    """The frames in the program's own source (valgrind stops at main)."""
    return [(f["function"], f["line"]) for f in frames
            if f["file"] and Path(str(f["file"])).name == source]


@needs_valgrind
@pytest.mark.parametrize(("program", "mode"), [("invalid_frees.c", "realloc-freed"),
                                               ("invalid_frees.c", "fastbin-dup"),
                                               ("crash.c", "segv")])
def test_invalid_frees_and_the_fatal_signal_read_as_leaktrace_tells_them(
        build_dir: Path, tmp_path: Path, program: str, mode: str) -> None:
    """valgrind's InvalidFree errors and its <fatal_signal> fill the same parts of the report
    as a capture's INVALID_FREES and FATAL: the same calls, causes and program frames."""
    from leakharness import compile_program, json_report, leaktrace
    from leakharness import marker_line as marker_line_of

    exe = compile_program(program, build_dir, "-O0")
    xml = tmp_path / "run.xml"
    subprocess.run([VALGRIND, "--xml=yes", f"--xml-file={xml}", str(exe), mode],
                   capture_output=True, timeout=300)
    theirs = json.loads(run_cli("report", "--format", "json", str(xml)).stdout)
    capture = tmp_path / "run.lt"
    leaktrace("run", "-o", str(capture), "--", str(exe), mode, cwd=tmp_path)
    ours = json_report(capture)
    assert [(f["api"], f["calls"], _sites(f["frames"], program))
            for f in theirs["invalid_frees"]] == [
        (f["api"], f["calls"], _sites(f["frames"], program)) for f in ours["invalid_frees"]]
    if program == "crash.c":
        fatal, mine = theirs["fatal_signal"], ours["fatal_signal"]
        assert (fatal["name"], fatal["cause"], fatal["main_thread"]) == (
            mine["name"], mine["cause"], mine["main_thread"]) == (
            "SIGSEGV", "address not mapped, at address 0x10", True)
        assert _sites(fatal["frames"], program) == _sites(mine["frames"], program) == [
            ("main", marker_line_of(program, "die-segv"))]
    else:
        assert theirs["fatal_signal"] is None
        # valgrind's invalid free is an error for --error-exitcode, as a capture's is.
        assert run_cli("report", "--error-exitcode=3", str(xml)).returncode == 3
