"""Suppressions: valgrind's file format (wildcards, `...`, match-leak-kinds, entries for other
tools ignored) and LeakSanitizer's `leak:` lines, matching against loss records, the default
list, and --gen-suppressions entries that suppress what they were made from (under leaktrace,
and under valgrind too: they are written as valgrind writes them)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from leakharness import compile_program, leaktrace, run_traced
from memcheck_text import VALGRIND, needs_valgrind, parse_leak_summary, parse_loss_records

from leaktrace.analyze.build_report import build_report
from leaktrace.capture.reader import read_capture
from leaktrace.errors import LeaktraceError
from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.suppressions import (
    LsanSuppression,
    ValgrindSuppression,
    default_suppressions,
    load_suppressions,
    parse_suppressions,
)
from leaktrace.suppressions.apply import apply_suppressions
from leaktrace.suppressions.entries import ANY_FRAMES, FUN, OBJ, SRC, FramePattern
from leaktrace.suppressions.matcher import SuppressionMatcher, allocation_stack
from leaktrace.suppressions.patterns import lsan_match, valgrind_match

DEFINITE, INDIRECT = "definitely lost", "indirectly lost"
POSSIBLE, REACHABLE = "possibly lost", "still reachable"
ALL_KINDS = frozenset({DEFINITE, INDIRECT, POSSIBLE, REACHABLE})

# --- valgrind's file format ----------------------------------------------------------------

VALGRIND_FILE = """\
# A comment, then blank lines: both skipped.

{
   widget-leak
   Memcheck:Leak
   match-leak-kinds: definite,possible
   fun:malloc
   fun:make_*
   ...
   obj:/usr/lib/lib?.so*
   src:widget.cc:42
}
{
   old-style, no kinds line
   Memcheck:Leak
   fun:calloc
   ...
}
{
   uninitialised value: not a leak, ignored
   Memcheck:Cond
   fun:strlen
}
{
   another tool's entry: ignored
   Helgrind:Race
   fun:racy
}
{
     every kind, written by hand with extra spaces
   Memcheck,Helgrind:Leak
   match-leak-kinds:   all
   src:widget.cc
}
"""


def test_valgrind_file_is_parsed_like_valgrind_does() -> None:
    entries = parse_suppressions(VALGRIND_FILE, "my.supp")
    assert [type(e) for e in entries] == [ValgrindSuppression] * 3
    first, second, third = entries
    assert isinstance(first, ValgrindSuppression)
    # valgrind -v: "used_suppression: ... my.supp:4", the line of the entry's name
    assert (first.name, first.origin) == ("widget-leak", "my.supp:4")
    assert first.leak_kinds == frozenset({DEFINITE, POSSIBLE})
    assert first.frames == (FramePattern(FUN, "malloc"), FramePattern(FUN, "make_*"),
                            FramePattern(ANY_FRAMES), FramePattern(OBJ, "/usr/lib/lib?.so*"),
                            FramePattern(SRC, "widget.cc", 42))
    assert isinstance(second, ValgrindSuppression) and second.leak_kinds is None
    assert second.frames[-1] == FramePattern(ANY_FRAMES)
    assert isinstance(third, ValgrindSuppression)
    assert third.name == "every kind, written by hand with extra spaces"
    assert third.leak_kinds == ALL_KINDS and third.frames == (FramePattern(SRC, "widget.cc"),)


@pytest.mark.parametrize(("text", "message"), [
    ("{\n n\n Memcheck:Leak\n fun:f\n}\n}\n",
     "my.supp:6: expected '{' to start a suppression, got '}'"),
    ("{\n}\n", "my.supp:1: the suppression has no name"),
    ("{\n name\n", "unexpected end of file: expected TOOL:KIND"),
    ("{\n name\n Leak\n fun:f\n}\n", "my.supp:3: expected TOOL:KIND such as Memcheck:Leak"),
    ("{\n name\n Memcheck:Leak\n match-leak-kinds: lost\n fun:f\n}\n",
     "my.supp:4: unknown leak kind 'lost'"),
    ("{\n name\n Memcheck:Leak\n function:f\n}\n",
     "my.supp:4: a stack line is '...' or starts with fun:, obj: or src:, got 'function:f'"),
    ("{\n name\n Memcheck:Leak\n}\n", "suppression 'name' has no stack lines"),
    ("{\n name\n Memcheck:Leak\n ...\n ...\n}\n", "must have a stack line that is not '...'"),
    ("{\n name\n Memcheck:Leak\n fun:f\n", "unexpected end of file: expected a stack line"),
    ("{\n name\n Memcheck:Cond\n fun:f\n", "unexpected end of file: expected '}'"),
    ("{\n name\n Memcheck:Free\n match-leak-kinds: all\n fun:free\n}\n",
     "my.supp:4: match-leak-kinds: is for Memcheck:Leak entries, not Memcheck:Free"),
])
def test_bad_valgrind_files_give_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(LeaktraceError) as info:
        parse_suppressions(text, "my.supp")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_lsan_file() -> None:
    entries = parse_suppressions(
        "# LSan\nleak:make_widget\n  leak:^libfoo.so$\ninterceptor_via_fun:bar\n", "l.supp")
    assert entries == [LsanSuppression("make_widget", "l.supp:2"),
                       LsanSuppression("^libfoo.so$", "l.supp:3")]
    assert entries[0].name == "leak:make_widget"
    with pytest.raises(LeaktraceError, match=r"l\.supp:1: expected '\{' .* got 'oops'"):
        parse_suppressions("oops\n", "l.supp")
    with pytest.raises(LeaktraceError, match=r"l\.supp:1: leak: needs a pattern"):
        parse_suppressions("leak:\n", "l.supp")
    # A typo is refused, as LSan refuses it (it suppressed nothing, silently); an editor's
    # byte order mark is not part of the first type.
    with pytest.raises(LeaktraceError, match=r"l\.supp:2: unknown suppression type 'leek'"):
        parse_suppressions("leak:a\nleek:make_widget\n", "l.supp")
    assert parse_suppressions("\ufeffleak:make_widget\nrace:x\n", "l.supp") == [
        LsanSuppression("make_widget", "l.supp:1")]


def test_empty_and_comment_only_files_hold_nothing() -> None:
    assert parse_suppressions("") == [] and parse_suppressions("# only\n\n") == []


# --- wildcards --------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("malloc", "malloc", True),
    ("malloc", "malloc2", False),  # the whole name
    ("*alloc", "calloc", True),
    ("_ZN7widgets*", "_ZN7widgets10make_labelEi", True),
    ("make_?idget", "make_widget", True),
    ("make_?idget", "make_wwidget", False),
    ("*", "", True),
    (r"operator new\*", "operator new*", True),
    (r"operator new\*", "operator new[]", False),
    ("*/libstdc++.so*", "/lib/x86_64-linux-gnu/libstdc++.so.6", True),
])
def test_valgrind_wildcards(pattern: str, name: str, matches: bool) -> None:
    assert valgrind_match(pattern, name) is matches


def test_many_stars_match_as_the_regex_does_and_in_bounded_time() -> None:
    """A pattern of many stars is matched by a two-pointer loop (a regex of many `.*`
    backtracked for minutes on a long C++ name it does not match); both agree."""
    import random
    import time

    from leaktrace.suppressions.patterns import _glob_match, _glob_tokens, _valgrind_regex

    name = "std::vector<app::" + "a" * 300 + ">::push_back(int const&)"
    started = time.monotonic()
    assert not valgrind_match("*a*a*a*a*a*a*a*ab", name)
    assert not valgrind_match("*" * 70 + "x", name)
    assert valgrind_match("*vector*a*a*a*push_back*", name)
    assert time.monotonic() - started < 1.0
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice("ab*") for _ in range(rng.randrange(8)))
        pattern = "".join(rng.choice("ab*?\\") for _ in range(rng.randrange(8)))
        assert _glob_match(_glob_tokens(pattern), text) is (
            _valgrind_regex(pattern).fullmatch(text) is not None), (pattern, text)


@pytest.mark.parametrize(("template", "text", "matches"), [
    ("widget", "widgets::make_widget(long)", True),  # anywhere in the name
    ("^widgets::", "widgets::make_widget(long)", True),
    ("^make", "widgets::make_widget(long)", False),
    ("(long)$", "widgets::make_widget(long)", True),
    ("widget$", "widgets::make_widget(long)", False),
    ("make*long", "widgets::make_widget(long)", True),
    ("^widgets*$", "widgets::make", True),
    ("a*b$", "abab", False),  # LSan matches pieces left to right without backtracking
    ("x", None, False),
    ("x", "", False),
])
def test_lsan_templates(template: str, text: str | None, matches: bool) -> None:
    assert lsan_match(template, text) is matches


# --- matching records ----------------------------------------------------------------------

def record(*functions: str, kind: str = "malloc", leak_kind: str | None = DEFINITE,
           module: str = "/opt/app/bin/app") -> LeakRecord:
    frames = [Frame(address=0x1000 + i, function=f or None, module=module, offset=i,
                    file="/src/app.cc" if f else None, line=10 + i if f else None)
              for i, f in enumerate(functions)]
    return LeakRecord(stack_id="abcd0123", kind=kind, bytes=64, blocks=1, frames=frames,
                      leak_kind=leak_kind, direct_bytes=64, indirect_bytes=0)


def valgrind_entry(*lines: str, kinds: str | None = None) -> ValgrindSuppression:
    kinds_line = f"match-leak-kinds: {kinds}\n" if kinds else ""
    [entry] = parse_suppressions("{\n t\n Memcheck:Leak\n" + kinds_line + "\n".join(lines)
                                 + "\n}\n")
    assert isinstance(entry, ValgrindSuppression)
    return entry


def matches(entry: ValgrindSuppression | LsanSuppression, rec: LeakRecord) -> bool:
    return SuppressionMatcher([entry]).match(rec) is entry


def test_stack_starts_with_the_allocation_function() -> None:
    leak = record("make", "main", kind="calloc")
    assert [f.function for f in allocation_stack(leak)] == ["calloc", "make", "main"]
    assert matches(valgrind_entry("fun:calloc", "fun:make"), leak)
    assert not matches(valgrind_entry("fun:make"), leak)  # the stack's top is calloc
    # operator new heads the backtrace already (the shim saw its call to malloc), as valgrind
    # shows it.
    new = record("operator new(unsigned long)", "make", "main")
    assert [f.function for f in allocation_stack(new)][:2] == ["operator new(unsigned long)",
                                                                "make"]
    assert matches(valgrind_entry("fun:_Znwm", "fun:make"), new)


@pytest.mark.parametrize(("lines", "expected"), [
    (["fun:malloc", "fun:inner", "fun:middle", "fun:outer", "fun:main"], True),
    (["fun:malloc", "fun:inner"], True),  # frames below the last line do not matter
    (["fun:malloc", "...", "fun:main"], True),
    (["...", "fun:inner", "...", "fun:main"], True),
    (["fun:malloc", "...", "fun:inner"], True),  # ... matches zero frames
    (["...", "fun:main", "..."], True),
    (["fun:malloc", "fun:middle"], False),  # no ...: frames must follow each other
    (["fun:malloc", "...", "fun:nowhere"], False),
    (["fun:malloc", "fun:inner", "fun:middle", "fun:outer", "fun:main", "fun:below"], False),
    (["fun:malloc", "obj:*/app", "obj:/opt/app/bin/app"], True),
    (["fun:malloc", "src:app.cc:10", "src:app.cc"], True),
    (["fun:malloc", "src:app.cc:11"], False),
    (["fun:malloc", "src:/src/app.cc:10"], True),
])
def test_frame_patterns_and_frame_wildcards(lines: list[str], expected: bool) -> None:
    leak = record("inner", "middle", "outer", "main")
    assert matches(valgrind_entry(*lines), leak) is expected


def test_frame_without_function_matches_obj_and_question_marks() -> None:
    leak = record("", "main", module="/usr/lib/libfoo.so.1")
    assert matches(valgrind_entry("fun:malloc", "obj:/usr/lib/libfoo.so*"), leak)
    assert matches(valgrind_entry("fun:malloc", "fun:???"), leak)
    assert not matches(valgrind_entry("fun:malloc", "fun:main"), leak)


def test_obj_lines_match_the_file_a_module_path_resolves_to(tmp_path: Path) -> None:
    """valgrind shows the file (libstdc++.so.6.0.30, /usr/lib/...), the loader's list the
    name it was asked for (libstdc++.so.6, /lib/...)."""
    real = tmp_path / "usr" / "libfoo.so.1.2.3"
    real.parent.mkdir()
    real.write_bytes(b"")
    (tmp_path / "libfoo.so.1").symlink_to(real)
    leak = record("", "main", module=str(tmp_path / "libfoo.so.1"))
    assert matches(valgrind_entry("fun:malloc", f"obj:{real}"), leak)
    assert matches(valgrind_entry("fun:malloc", f"obj:{tmp_path}/libfoo.so.1"), leak)
    assert not matches(valgrind_entry("fun:malloc", f"obj:{tmp_path}/usr/libbar.so*"), leak)


def test_leak_kinds_of_an_entry() -> None:
    entry = valgrind_entry("fun:malloc", kinds="definite,possible")
    assert matches(entry, record("f", leak_kind=DEFINITE))
    assert matches(entry, record("f", leak_kind=POSSIBLE))
    assert not matches(entry, record("f", leak_kind=REACHABLE))
    # No scan: the record could be any kind; only an entry for all kinds is sure to mean it.
    assert not matches(entry, record("f", leak_kind=None))
    assert matches(valgrind_entry("fun:malloc"), record("f", leak_kind=None))
    assert matches(valgrind_entry("fun:malloc", kinds="all"), record("f", leak_kind=None))
    assert not matches(valgrind_entry("fun:malloc", kinds="none"), record("f"))


def test_mangled_patterns_match_demangled_names() -> None:
    # No symbol table to read (the module does not exist): a mangled name without wildcards
    # is demangled and compared with the name shown.
    leak = record("widgets::make_widget(long)", "main")
    assert matches(valgrind_entry("fun:malloc", "fun:_ZN7widgets11make_widgetEl"), leak)
    assert not matches(valgrind_entry("fun:malloc", "fun:_ZN7widgets10make_labelEi"), leak)
    assert matches(valgrind_entry("fun:malloc", "fun:widgets::make_*"), leak)


def test_lsan_entries_match_function_file_or_module_anywhere() -> None:
    leak = record("widgets::make_widget(long)", "main", module="/opt/app/lib/libwidgets.so")
    for pattern in ("make_widget", "^widgets::", "app.cc$", "libwidgets", "^malloc$", "main$"):
        assert matches(LsanSuppression(pattern, "x:1"), leak), pattern
    for pattern in ("^make_widget", "libgadgets", "mai$"):
        assert not matches(LsanSuppression(pattern, "x:1"), leak), pattern
    # Any leak kind, and records without one.
    assert matches(LsanSuppression("main", "x:1"), record("main", leak_kind=REACHABLE))
    assert matches(LsanSuppression("main", "x:1"), record("main", leak_kind=None))


def test_first_matching_suppression_wins_and_is_counted() -> None:
    report = Report(source="leaktrace", records=[record("a", "main"), record("b", "main")])
    first, second = LsanSuppression("main", "f:1"), LsanSuppression("a", "f:2")
    apply_suppressions(report, [first, second])
    assert [r.suppressed_by for r in report.records] == ["leak:main", "leak:main"]
    assert [(u.name, u.records, u.bytes) for u in report.suppressions_used] == [
        ("leak:main", 2, 128)]
    assert (report.summary.suppressed.blocks, report.summary.suppressed.bytes) == (2, 128)


# --- the default list -------------------------------------------------------------------

def test_default_list_parses_and_never_covers_definite_leaks() -> None:
    entries = default_suppressions()
    assert len(entries) >= 10
    names = [e.name for e in entries]
    assert len(set(names)) == len(names)
    for entry in entries:
        assert isinstance(entry, ValgrindSuppression)
        assert entry.leak_kinds is not None and DEFINITE not in entry.leak_kinds, entry.name
        assert entry.origin.startswith("<leaktrace>/default.supp:")
    assert {"ld.so-dlopen-link-maps", "glibc-thread-dtv", "libstdc++-emergency-eh-pool"} <= set(
        names)


def test_user_files_come_before_the_defaults(tmp_path: Path) -> None:
    mine = tmp_path / "mine.supp"
    mine.write_text("leak:something\n")
    entries = load_suppressions([mine])
    assert entries[0] == LsanSuppression("something", f"{mine}:1")
    assert len(entries) == 1 + len(default_suppressions())
    assert load_suppressions([mine], with_defaults=False) == entries[:1]
    with pytest.raises(LeaktraceError, match=r"cannot read suppression file .*nope\.supp"):
        load_suppressions([tmp_path / "nope.supp"])


# --- end to end on a real program -----------------------------------------------------------

PROGRAM = "suppress_me.cpp"
# (leak kind, bytes) of each of the program's loss records
WIDGET_LOST, WIDGET_KEPT = (DEFINITE, 64), (REACHABLE, 64)
LABEL, BUFFER = (POSSIBLE, 90), (DEFINITE, 512)


@pytest.fixture(scope="module")
def program(build_dir: Path) -> Path:
    return compile_program(PROGRAM, build_dir, "-O0")


@pytest.fixture(scope="module")
def capture(program: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = run_traced(program, work=tmp_path_factory.mktemp("suppress"))
    assert run.returncode == 0, run.stderr
    return run.capture


def report_text(capture: Path, *options: str) -> str:
    done = leaktrace("report", str(capture), "--show", "all", *options)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shown(text: str) -> list[tuple[str, int]]:
    return sorted((r.leak_kind, r.bytes) for r in parse_loss_records(text))


def entries_in(text: str) -> list[str]:
    return re.findall(r"^\{\n.*?^\}$", text, flags=re.MULTILINE | re.DOTALL)


def named(entries: list[str]) -> str:
    """The entries with names of their own, as a user would save them."""
    return "\n".join(e.replace("<insert_a_suppression_name_here>", f"generated-{i}")
                     for i, e in enumerate(entries))


MEMCHECK_ALL = ("--leak-check=full", "--show-leak-kinds=all")


def valgrinds_entries(program: Path) -> list[str]:
    """The entries `valgrind --gen-suppressions=all` writes for the program's leaks."""
    assert VALGRIND is not None
    generated = subprocess.run([VALGRIND, *MEMCHECK_ALL, "--gen-suppressions=all", str(program)],
                               capture_output=True, text=True, check=False, timeout=300)
    return entries_in("\n".join(line for line in generated.stderr.splitlines()
                                if not line.startswith("==")))


def valgrind_with_suppressions(program: Path, entries: list[str], work: Path) -> Any:
    """valgrind's LEAK SUMMARY of the program with these entries as its suppressions."""
    assert VALGRIND is not None
    supp = work / "entries.supp"
    supp.write_text(named(entries))
    suppressed = subprocess.run([VALGRIND, *MEMCHECK_ALL, f"--suppressions={supp}",
                                 str(program)], capture_output=True, text=True, check=False,
                                timeout=300)
    return parse_leak_summary(suppressed.stderr)


def test_program_records(capture: Path) -> None:
    text = report_text(capture, "--no-default-suppressions")
    assert shown(text) == sorted([WIDGET_LOST, WIDGET_KEPT, LABEL, BUFFER])


def test_generated_suppressions_suppress_their_records(capture: Path, tmp_path: Path) -> None:
    text = report_text(capture, "--no-default-suppressions", "--gen-suppressions")
    entries = entries_in(text)
    assert len(entries) == 4
    # C++ functions by their symbols, as valgrind writes them, the operator new the program
    # called first; the stack stops at main.
    assert any("   fun:_Znwm\n   fun:_ZN7widgets11make_widgetEl\n" in e for e in entries)
    assert any("   fun:malloc\n   fun:make_buffer\n" in e for e in entries)
    assert all(e.rstrip("}").rstrip().endswith("fun:main") for e in entries)
    supp = tmp_path / "generated.supp"
    supp.write_text(named(entries))
    again = report_text(capture, "--no-default-suppressions", "--suppressions", str(supp))
    assert shown(again) == []
    summary = parse_leak_summary(again)
    assert set(summary.kinds.values()) == {(0, 0)}
    assert summary.suppressed == (64 + 64 + 90 + 512, 4)
    assert again.count("used_suppression:") == 4


def test_one_generated_entry_suppresses_only_its_record(capture: Path, tmp_path: Path) -> None:
    text = report_text(capture, "--no-default-suppressions", "--gen-suppressions")
    [lost_widget] = [e for e in entries_in(text) if "match-leak-kinds: definite" in e
                     and "make_widget" in e]
    supp = tmp_path / "one.supp"
    supp.write_text(named([lost_widget]))
    again = report_text(capture, "--no-default-suppressions", "--suppressions", str(supp))
    # The same backtrace's still reachable record stays: the entry says definite.
    assert shown(again) == sorted([WIDGET_KEPT, LABEL, BUFFER])
    assert parse_leak_summary(again).suppressed == (64, 1)


@needs_valgrind
def test_generated_entries_are_what_valgrind_generates_and_work_in_valgrind(
        program: Path, capture: Path, tmp_path: Path) -> None:
    assert VALGRIND is not None
    ours = entries_in(report_text(capture, "--no-default-suppressions", "--gen-suppressions"))
    theirs = valgrinds_entries(program)
    assert sorted(ours) == sorted(theirs)
    summary = valgrind_with_suppressions(program, ours, tmp_path)
    assert set(summary.kinds.values()) == {(0, 0)}
    assert summary.suppressed == (64 + 64 + 90 + 512, 4)


CXX_PROGRAM = "suppress_cxx.cpp"
# new int[25]; a Holder and its new char[48]; new int[3]; the inlined new int[5]
CXX_LEAKED = (100 + 8 + 48 + 12 + 20, 5)


@needs_valgrind
@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
def test_suppressions_go_both_ways_between_valgrind_and_leaktrace(
        build_dir: Path, tmp_path: Path, stripped: bool) -> None:
    """Where the names differ between the tools: operator new[] (libstdc++'s calls new: a
    backtrace shows new, valgrind's replacement says new[]), a constructor (C1 and C2 are one
    address), an inlined call (valgrind: the debug info's short name), a stripped program (no
    main: valgrind stops at "(below main)"). valgrind's generated entries suppress every
    record of leaktrace's, and leaktrace's every record of valgrind's."""
    assert VALGRIND is not None
    program = compile_program(CXX_PROGRAM, build_dir, "-O0")
    if stripped:
        program = Path(shutil.copy(program, tmp_path / "suppress_cxx-stripped"))
        subprocess.run(["strip", str(program)], check=True)
    run = run_traced(program, work=tmp_path)
    assert run.returncode == 0, run.stderr
    theirs = valgrinds_entries(program)
    assert len(theirs) == 5
    valgrinds = tmp_path / "valgrind.supp"
    valgrinds.write_text(named(theirs))
    again = report_text(run.capture, "--no-default-suppressions", "--suppressions",
                        str(valgrinds))
    assert shown(again) == []
    assert parse_leak_summary(again).suppressed == CXX_LEAKED

    ours = entries_in(report_text(run.capture, "--no-default-suppressions",
                                  "--gen-suppressions"))
    assert len(ours) == 5
    summary = valgrind_with_suppressions(program, ours, tmp_path)
    assert set(summary.kinds.values()) == {(0, 0)}
    assert summary.suppressed == CXX_LEAKED


@needs_valgrind
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_valgrinds_entries_for_c_library_leaks_suppress_them(build_dir: Path, tmp_path: Path,
                                                             opt: str) -> None:
    """valgrind names glibc's functions by their exported, versioned symbols (strndup,
    fclose@@GLIBC_2.2.5, realpath@@GLIBC_2.3) where debug info says __strndup or
    _IO_new_fclose, and puts its memalign at the head of the aligned allocators' stacks: its
    generated entries still suppress each record."""
    program = compile_program("suppress_libc.c", build_dir, opt)
    run = run_traced(program, work=tmp_path)
    assert run.returncode == 0, run.stderr
    theirs = valgrinds_entries(program)
    assert len(theirs) == 7
    assert any("@@GLIBC_" in e for e in theirs)  # what is tried here
    valgrinds = tmp_path / "valgrind.supp"
    valgrinds.write_text(named(theirs))
    before = parse_leak_summary(report_text(run.capture, "--no-default-suppressions"))
    assert before.kinds["definitely lost"][1] == 7
    again = report_text(run.capture, "--no-default-suppressions", "--suppressions",
                        str(valgrinds))
    assert shown(again) == []
    assert parse_leak_summary(again).suppressed == before.kinds["definitely lost"]
    assert again.count("used_suppression:") == 7


@pytest.mark.parametrize(("content", "left"), [
    ("leak:make_widget\n", [LABEL, BUFFER]),  # LeakSanitizer: any frame, any kind
    ("leak:^make_buffer$\n", [WIDGET_LOST, WIDGET_KEPT, LABEL]),
    ("leak:suppress_me.cpp\n", []),  # the source file of every record
    ("{\n wild\n Memcheck:Leak\n fun:*alloc\n fun:_ZN7widgets*\n}\n",
     [WIDGET_LOST, WIDGET_KEPT, BUFFER]),  # a mangled pattern with wildcards: the symbol
    ("{\n demangled\n Memcheck:Leak\n ...\n fun:widgets::make_*\n ...\n fun:main\n}\n",
     [BUFFER]),
    ("{\n kinds\n Memcheck:Leak\n match-leak-kinds: definite\n ...\n fun:main\n}\n",
     [WIDGET_KEPT, LABEL]),
    ("{\n other\n Memcheck:Cond\n fun:main\n}\n", [WIDGET_LOST, WIDGET_KEPT, LABEL, BUFFER]),
])
def test_hand_written_suppressions(capture: Path, tmp_path: Path, content: str,
                                   left: list[tuple[str, int]]) -> None:
    supp = tmp_path / "hand.supp"
    supp.write_text(content)
    text = report_text(capture, "--no-default-suppressions", "--suppressions", str(supp))
    assert shown(text) == sorted(left)


def test_suppressions_in_json_and_fail_on_leak(capture: Path, tmp_path: Path) -> None:
    supp = tmp_path / "buffer.supp"
    supp.write_text("leak:make_buffer\n")
    done = leaktrace("report", str(capture), "--format", "json", "--suppressions", str(supp),
                     "--fail-on-leak=64")
    assert done.returncode == 99  # definitely + possibly lost: 64 + 90 > 64
    import json

    data: dict[str, Any] = json.loads(done.stdout)
    assert data["summary"]["suppressed"] == {"bytes": 512, "blocks": 1}
    assert data["summary"]["definitely_lost"] == {"bytes": 64, "blocks": 1}
    assert data["suppressions_used"] == [{"name": "leak:make_buffer",
                                          "origin": f"{supp}:1", "records": 1, "blocks": 1,
                                          "bytes": 512, "invalid_free_calls": 0}]
    assert data["records"]  # the rest is still listed
    assert all("make_buffer" not in str(r["frames"]) for r in data["records"])
    assert data["records_total"] == 4  # suppressed records keep their loss record number
    passing = leaktrace("report", str(capture), "--suppressions", str(supp),
                        "--fail-on-leak=154")
    assert passing.returncode == 0


def test_run_takes_suppressions_and_fails_on_the_chosen_kinds(program: Path,
                                                               tmp_path: Path) -> None:
    supp = _write(tmp_path, "lost.supp",
                  "{\n lost\n Memcheck:Leak\n match-leak-kinds: definite\n ...\n"
                  " fun:main\n}\n")
    common = ["run", "--suppressions", str(supp), "--report-file", "-"]
    # Possibly lost (90 bytes) still counts by default ...
    failing = leaktrace(*common, "--fail-on-leak", "--", str(program), cwd=tmp_path)
    assert failing.returncode == 99, failing.stderr
    assert parse_leak_summary(failing.stdout).suppressed == (64 + 512, 2)
    # ... not when only definitely lost memory fails the run.
    passing = leaktrace(*common, "--fail-on-leak", "--fail-on-kinds", "definite", "--",
                        str(program), cwd=tmp_path)
    assert passing.returncode == 0, passing.stderr


def test_generated_suppressions_in_json(capture: Path) -> None:
    import json

    done = leaktrace("report", str(capture), "--format", "json", "--gen-suppressions",
                     "--no-default-suppressions", "--show", "all")
    data = json.loads(done.stdout)
    text = report_text(capture, "--no-default-suppressions", "--gen-suppressions")
    assert sorted(r["suppression"] for r in data["records"]) == sorted(entries_in(text))


def test_default_suppressions_cover_a_live_thread_dtv(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("leak_roots.c", build_dir, "-O0")
    run = run_traced(exe, "thread", work=tmp_path)
    noisy = report_text(run.capture, "--no-default-suppressions")
    quiet = report_text(run.capture)
    assert parse_leak_summary(noisy).kinds[POSSIBLE][1] == 1
    summary = parse_leak_summary(quiet)
    assert summary.kinds[POSSIBLE] == (0, 0)
    dtv_bytes = parse_leak_summary(noisy).kinds[POSSIBLE][0]
    assert summary.suppressed == (dtv_bytes, 1)
    assert re.search(r"used_suppression: +1 glibc-thread-dtv <leaktrace>/default\.supp:\d+ "
                     rf"suppressed: {dtv_bytes} bytes in 1 blocks", quiet)


def test_unscanned_captures_take_kindless_entries_only(tmp_path: Path) -> None:
    sample = Path(__file__).parent / "data" / "capture-v1.lt"
    report = build_report(read_capture(sample))
    live = report.summary.live_bytes
    apply_suppressions(report, [valgrind_entry("fun:malloc", "...", kinds="definite")])
    assert report.summary.suppressed.blocks == 0  # a version 1 capture has no leak kinds
    apply_suppressions(report, [valgrind_entry("fun:mmap", "...")])
    assert (report.summary.suppressed.blocks, report.summary.suppressed.bytes) == (1, 65536)
    done = leaktrace("report", str(sample), "--suppressions", str(_write(tmp_path, "mmap.supp",
                     "{\n m\n Memcheck:Leak\n fun:mmap\n}\n")), f"--fail-on-leak={live - 65536}")
    assert done.returncode == 0, done.stderr
    assert "suppressed: 1 block, 64.0 KiB (65,536 bytes) (not shown)" in done.stdout


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --- command line errors ------------------------------------------------------------------

def test_bad_suppression_file_is_one_line_error(capture: Path, tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.supp", "{\n name\n Memcheck:Leak\n fun:f\n")
    for command in (["report", str(capture)], ["run", "--", "/bin/true"]):
        done = leaktrace(*command[:1], "--suppressions", str(bad), *command[1:], cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"leaktrace: error: {bad}:4: unexpected end of file: expected a stack line or '}}'"]
    assert not list(tmp_path.glob("*.lt"))  # run stopped before starting the program
    missing = leaktrace("report", str(capture), "--suppressions", str(tmp_path / "none.supp"))
    assert missing.returncode == 2
    assert "cannot read suppression file" in missing.stderr and "Traceback" not in missing.stderr


def test_default_suppressions_cover_setenv_and_text_domains_when_threads_run_at_exit(
        build_dir: Path, tmp_path: Path) -> None:
    """glibc's setenv bookkeeping stays live when threads run at exit (no __libc_freeres):
    some of its tree's nodes are possibly lost (tagged pointers), which tripped
    --fail-on-leak on `go version`. The defaults hide it all; valgrind (which frees it)
    reports nothing from setenv either."""
    exe = compile_program("setenv_thread.c", build_dir, "-O2")
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    noisy = parse_leak_summary(report_text(run.capture, "--no-default-suppressions"))
    assert noisy.kinds[POSSIBLE][1] > 0
    quiet_text = report_text(run.capture)
    quiet = parse_leak_summary(quiet_text)
    assert quiet.kinds[POSSIBLE] == (0, 0)
    assert "glibc-setenv" in quiet_text
    assert "glibc-gettext-domains" in quiet_text  # textdomain and bindtextdomain's strings
    gate = leaktrace("report", str(run.capture), "--fail-on-leak")
    assert gate.returncode == 0, gate.stdout
