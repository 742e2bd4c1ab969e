"""`leaktrace mtrace`: real logs written by glibc's mtrace(), compared with glibc's own
`mtrace` script where it is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from companion_helpers import assert_one_line_error, compile_c, marker_line, run_cli

from leaktrace.render.mtrace_table import c_alternate_hex, render_mtrace_table
from leaktrace.sources.mtrace_callers import CallerResolver, parse_caller
from leaktrace.sources.mtrace_log import AnomalyKind, MtraceLogReader, read_mtrace_log
from leaktrace.sources.mtrace_report import build_report

GLIBC_MTRACE = shutil.which("mtrace") or ""

LEAKY = r"""
#include <mcheck.h>
#include <stdlib.h>
void * volatile sink[8];
__attribute__((noinline)) void leak_small(void) { sink[0] = malloc(100); } /* LEAK_SMALL */
__attribute__((noinline)) void leak_array(void) { sink[1] = calloc(3, 40); } /* LEAK_ARRAY */
int main(void) {
  void *before = malloc(16);        /* allocated before tracing: its free is "never alloc'd" */
  void *grow_me = malloc(24);
  mtrace();
  leak_small();
  leak_array();
  void *freed = malloc(50); free(freed);
  void *moved = malloc(10);
  moved = realloc(moved, 1000); /* LEAK_REALLOC */
  sink[2] = moved;
  free(before);
  sink[3] = realloc(grow_me, 4000); /* LEAK_UNTRACED */
  void *zero = realloc(malloc(20), 0);
  sink[4] = zero;
  muntrace();
  return 0;
}
"""

CLEAN = r"""
#include <mcheck.h>
#include <stdlib.h>
int main(void) {
  mtrace();
  for (int i = 1; i < 50; i++) { void *p = malloc(i * 8); p = realloc(p, i * 16); free(p); }
  muntrace();
  return 0;
}
"""


def traced_run(binary: Path, log: Path) -> None:
    """Run `binary` with glibc's malloc tracing (libc_malloc_debug since glibc 2.34)."""
    env = dict(os.environ, MALLOC_TRACE=str(log), LD_PRELOAD="libc_malloc_debug.so.0")
    subprocess.run([str(binary)], check=True, env=env, cwd=binary.parent, capture_output=True)
    if not log.exists():
        pytest.skip("this libc wrote no MALLOC_TRACE log (no libc_malloc_debug.so.0?)")


@pytest.fixture
def leaky_log(tmp_path: Path) -> tuple[Path, Path]:
    binary = compile_c(tmp_path, LEAKY)
    log = tmp_path / "mtrace.log"
    traced_run(binary, log)
    return binary, log


def test_table_lists_exact_leaks_with_file_and_line(leaky_log: tuple[Path, Path]) -> None:
    binary, log = leaky_log
    result = run_cli("mtrace", str(binary), str(log))
    assert result.returncode == 0, result.stderr  # leaks fail only with --fail-on-leak
    assert "Traceback" not in result.stderr
    source = LEAKY
    rows = result.stdout.split("Caller\n", 1)[1].splitlines()
    found = sorted((int(r.split()[1], 16), r.split(" at ", 1)[1]) for r in rows)
    c_file = binary.with_suffix(".c")
    assert found == sorted(
        [
            (100, f"{c_file}:{marker_line(source, 'LEAK_SMALL')}"),
            (120, f"{c_file}:{marker_line(source, 'LEAK_ARRAY')}"),
            (1000, f"{c_file}:{marker_line(source, 'LEAK_REALLOC')}"),
            (4000, f"{c_file}:{marker_line(source, 'LEAK_UNTRACED')}"),
        ]
    )
    assert result.stdout.startswith("- 0x")  # the free of the block allocated before mtrace()
    assert "Free 6 was never alloc'd" in result.stdout or "was never alloc'd" in result.stdout


@pytest.mark.skipif(not GLIBC_MTRACE, reason="glibc's mtrace script is not installed")
def test_output_is_identical_to_glibc_script(leaky_log: tuple[Path, Path]) -> None:
    binary, log = leaky_log
    ours = run_cli("mtrace", "--fail-on-leak", "--leak-exit-code", "1", binary.name, log.name,
                   cwd=binary.parent)
    theirs = subprocess.run(
        [GLIBC_MTRACE, binary.name, log.name], capture_output=True, text=True, cwd=binary.parent
    )
    assert ours.stdout == theirs.stdout
    assert ours.returncode == theirs.returncode == 1


@pytest.mark.skipif(not GLIBC_MTRACE, reason="glibc's mtrace script is not installed")
def test_output_is_the_scripts_but_for_discriminators(tmp_path: Path) -> None:
    """docs/mtrace-log.md: the table is the script's byte for byte but for normalized file
    names and addr2line's "(discriminator N)" suffix, which leaktrace's symbolizer leaves out
    (examples/leaky.c at -O2: its leaking call is inlined into a loop). The doc named only
    the file names."""
    import re

    source = Path(__file__).parent.parent / "examples" / "leaky.c"
    binary = tmp_path / "leaky"
    subprocess.run(["gcc", "-g", "-O2", "-o", str(binary), str(source)], check=True)
    from leakharness import leaktrace  # the installed package: run needs its shim

    done = leaktrace("run", "--mtrace-log", "trace.log", "--", "./leaky", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ours = run_cli("mtrace", "leaky", "trace.log", cwd=tmp_path)
    theirs = subprocess.run([GLIBC_MTRACE, "leaky", "trace.log"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert theirs.stdout.count("(discriminator ") == 300
    assert "(discriminator " not in ours.stdout
    assert ours.stdout == re.sub(r" \(discriminator \d+\)", "", theirs.stdout)
    assert ours.stdout.count("  at ") == 301


@pytest.mark.skipif(not GLIBC_MTRACE, reason="glibc's mtrace script is not installed")
def test_clean_program_says_no_leaks_like_glibc(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, CLEAN)
    log = tmp_path / "clean.log"
    traced_run(binary, log)
    ours = run_cli("mtrace", str(binary), str(log))
    theirs = subprocess.run([GLIBC_MTRACE, str(binary), str(log)], capture_output=True, text=True)
    assert ours.stdout == theirs.stdout == "No memory leaks.\n"
    assert ours.returncode == theirs.returncode == 0


def test_clean_program_exits_zero(tmp_path: Path) -> None:
    binary = compile_c(tmp_path, CLEAN)
    log = tmp_path / "clean.log"
    traced_run(binary, log)
    result = run_cli("mtrace", str(log))
    assert (result.returncode, result.stdout) == (0, "No memory leaks.\n")


def test_reader_counts_real_log(leaky_log: tuple[Path, Path]) -> None:
    _, log = leaky_log
    parsed = read_mtrace_log(str(log))
    assert sorted(b.size for b in parsed.live) == [100, 120, 1000, 4000]
    assert [a.kind for a in parsed.anomalies] == [
        AnomalyKind.FREE_UNKNOWN,
        AnomalyKind.REALLOC_UNKNOWN,
    ]
    assert parsed.counters["malformed_lines"] == 0
    assert parsed.counters["markers"] == 2  # = Start, = End


def test_report_groups_by_caller(leaky_log: tuple[Path, Path]) -> None:
    binary, log = leaky_log
    report = build_report(read_mtrace_log(str(log)), CallerResolver(str(binary)), log_path=str(log))
    assert report.source == "mtrace"
    assert report.summary.live_blocks == 4
    assert report.summary.live_bytes == 100 + 120 + 1000 + 4000
    assert report.summary.by_kind["realloc"].bytes == 5000
    lines = {(r.bytes, r.frames[0].function, r.frames[0].line) for r in report.records}
    assert (100, "leak_small", marker_line(LEAKY, "LEAK_SMALL")) in lines
    assert (120, "leak_array", marker_line(LEAKY, "LEAK_ARRAY")) in lines


def test_json_format_uses_the_report_model(leaky_log: tuple[Path, Path]) -> None:
    pytest.importorskip("leaktrace.render.json_report")
    binary, log = leaky_log
    result = run_cli("mtrace", "--format", "json", "--fail-on-leak=5219", str(binary), str(log))
    assert result.returncode == 99, result.stderr  # 5,220 bytes never freed
    document = json.loads(result.stdout)
    assert "mtrace" in json.dumps(document)
    assert str(100 + 120 + 1000 + 4000) in result.stdout


# --- the backtrace extension -------------------------------------------------------------

# alloc_from() is the only caller glibc sees; the full backtraces tell the two call sites apart.
TWO_PATHS = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mcheck.h>
#include <stdio.h>
#include <stdlib.h>
void * volatile sink[8];
__attribute__((noinline)) void *alloc_from(size_t n) {
  void *p = malloc(n); /* ALLOC_FROM */
  Dl_info info; dladdr(__builtin_return_address(0), &info);
  printf("%p %p %lx\n", p, __builtin_return_address(0),
         (unsigned long)((char *)__builtin_return_address(0) - (char *)info.dli_fbase));
  return p;
}
int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0); /* no stdio buffer in the log */
  mtrace();
  sink[0] = alloc_from(10); /* PATH_ONE */
  sink[1] = alloc_from(10); /* PATH_ONE_AGAIN */
  sink[2] = alloc_from(30); /* PATH_TWO */
  muntrace();
  return 0;
}
"""


def _log_with_backtraces(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A real glibc log with `#` backtrace lines added after each allocation, the way
    leaktrace's shim writes them: frame 0 is the caller glibc logged, frame 1 is in main."""
    binary = compile_c(tmp_path, TWO_PATHS, "two_paths", "-ldl")
    log = tmp_path / "plain.log"
    env = dict(os.environ, MALLOC_TRACE=str(log), LD_PRELOAD="libc_malloc_debug.so.0")
    printed = subprocess.run(
        [str(binary)], check=True, env=env, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    if not log.exists():
        pytest.skip("this libc wrote no MALLOC_TRACE log")
    outer = {}
    for line in printed.splitlines():
        pointer, return_address, module_offset = line.split()
        outer[int(pointer, 16)] = (int(return_address, 16), int(module_offset, 16))
    extended = tmp_path / "extended.log"
    with extended.open("w") as out:
        for line in log.read_text().splitlines():
            out.write(line + "\n")
            fields = line.split()
            if len(fields) == 5 and fields[2] == "+" and int(fields[3], 16) in outer:
                caller_offset = int(fields[1].rsplit("[", 1)[1].rstrip("]"), 16)
                out.write(f"# {caller_offset:#x} {binary}+{caller_offset:#x}\n")
                address, offset = outer[int(fields[3], 16)]
                out.write(f"# {address:#x} {binary}+{offset:#x}\n")
    return binary, log, extended


def test_backtrace_extension_groups_by_full_backtrace(tmp_path: Path) -> None:
    binary, _, extended = _log_with_backtraces(tmp_path)
    parsed = read_mtrace_log(str(extended))
    assert parsed.counters["backtrace_lines"] == 6
    assert parsed.counters["malformed_lines"] == 0
    report = build_report(parsed, CallerResolver(str(binary)), log_path=str(extended))
    by_line = {
        tuple((f.function, f.line) for f in r.frames): (r.blocks, r.bytes) for r in report.records
    }
    alloc_line = marker_line(TWO_PATHS, "ALLOC_FROM")
    path_one = marker_line(TWO_PATHS, "PATH_ONE")
    path_one_again = marker_line(TWO_PATHS, "PATH_ONE_AGAIN")
    path_two = marker_line(TWO_PATHS, "PATH_TWO")
    assert by_line == {
        (("alloc_from", alloc_line), ("main", path_one)): (1, 10),
        (("alloc_from", alloc_line), ("main", path_one_again)): (1, 10),
        (("alloc_from", alloc_line), ("main", path_two)): (1, 30),
    }


@pytest.mark.skipif(not GLIBC_MTRACE, reason="glibc's mtrace script is not installed")
def test_glibc_script_ignores_backtrace_lines(tmp_path: Path) -> None:
    binary, plain, extended = _log_with_backtraces(tmp_path)
    outputs = [
        subprocess.run([GLIBC_MTRACE, str(binary), str(log)], capture_output=True, text=True)
        for log in (plain, extended)
    ]
    assert outputs[0].stdout == outputs[1].stdout
    assert outputs[0].stdout.count(" at ") == 3
    ours = run_cli("mtrace", str(binary), str(extended))
    assert ours.stdout == outputs[0].stdout


# --- malformed input ------------------------------------------------------------------------


def test_malformed_lines_are_reported_by_number_without_stopping(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    log.write_text(
        "= Start\n"
        "@ ./prog:[0x11a7] + 0x5000 0x64\n"
        "this is not mtrace\n"
        "@ ./prog:[0x11a7] + 0xzz 0x10\n"
        "# 0x1234 nomodule\n"
        "@ ./prog:[0x11c4] + 0x6000 0x20\n"
        "- 0x6000\n"
        "@ ./prog:[0x11a7] + 0x7000 -0x64\n"  # a negative size (was counted as one)
        "@ ./prog:[0x11a7] + 0x8000 0xffffffffffffffffffffffff\n"  # past 64 bits
        "@ ./prog:[0x11a7] + 0x9000 0x8000000000000000\n"  # past any address space
        "= End\n"
    )
    result = run_cli("mtrace", str(log))
    assert result.returncode == 0
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert [w.split(":")[3] for w in warnings] == ["3", "4", "5", "8", "9", "10"]
    assert all(w.startswith("leaktrace: warning: ") for w in warnings)
    assert "0x0000000000005000     0x64  at 0x11a7" in result.stdout


def test_an_overlong_line_is_one_malformed_line(tmp_path: Path) -> None:
    """A 20 MB line (read 4 MiB at a time) was reported as several lines, every later line
    number shifted, and one warning carried megabytes of it."""
    log = tmp_path / "long.log"
    log.write_bytes(b"= Start\n@ ./prog:[0x11a7] + 0x5000 0x64\n" + b"x" * (20 << 20)
                    + b"\nbad line\n= End\n")
    result = run_cli("mtrace", str(log))
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert [w.split(":")[3] for w in warnings] == ["3", "4"]
    assert max(len(w) for w in warnings) < 1000  # 200 bytes of the line, at most
    assert "0x0000000000005000     0x64  at 0x11a7" in result.stdout


def test_flood_of_malformed_lines_is_summarized(tmp_path: Path) -> None:
    log = tmp_path / "noisy.log"
    log.write_text("= Start\n" + "junk\n" * 500 + "@ [0x1] + 0x10 0x8\n= End\n")
    result = run_cli("mtrace", str(log), "--fail-on-leak")
    assert result.returncode == 99
    assert len(result.stderr.splitlines()) == 21
    assert "500 malformed lines skipped in all" in result.stderr


def test_file_that_is_not_a_log_is_an_error(tmp_path: Path) -> None:
    bogus = tmp_path / "random.bin"
    bogus.write_bytes(os.urandom(3 << 20).replace(b"\n", b"x"))
    assert_one_line_error(run_cli("mtrace", str(bogus)), "not an mtrace log")


def test_missing_log_is_an_error(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("mtrace", str(tmp_path / "nope.log")), "nope.log")


def test_missing_binary_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("= Start\n= End\n")
    assert_one_line_error(run_cli("mtrace", str(tmp_path / "gone"), str(log)), "gone")


def test_too_many_arguments_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("mtrace", "a", "b", "c")
    assert result.returncode == 2
    assert_one_line_error(result, r"expected \[BINARY\] LOGFILE")


# --- units ----------------------------------------------------------------------------------


def test_caller_forms() -> None:
    plain = parse_caller("./prog:[0x11a7]")
    assert plain and (plain.module, plain.number, plain.symbol) == ("./prog", 0x11A7, None)
    named = parse_caller("/lib/x86_64-linux-gnu/libc.so.6:(__strdup+1a)[0x9e9aa]")
    assert named and (named.module, named.symbol, named.number_text) == (
        "/lib/x86_64-linux-gnu/libc.so.6",
        "__strdup+1a",
        "0x9e9aa",
    )
    no_colon = parse_caller("libfoo.so(foo+0x10)[0x1234]")
    assert no_colon and no_colon.module == "libfoo.so"
    bare = parse_caller("[0x401136]")
    assert bare and (bare.module, bare.number) == (None, 0x401136)
    assert parse_caller("0x401136") is not None
    assert parse_caller("") is None
    assert parse_caller("something else") is None


def test_printf_alternate_hex_matches_c() -> None:
    assert c_alternate_hex(0, 18, zero_pad=True) == "0" * 18
    assert c_alternate_hex(0x10, 18, zero_pad=True) == "0x0000000000000010"
    assert c_alternate_hex(0, 8, zero_pad=False) == "       0"
    assert c_alternate_hex(0x3E8, 8, zero_pad=False) == "   0x3e8"


def test_realloc_duplicate_and_failed_lines() -> None:
    reader = MtraceLogReader()
    reader.feed(
        [
            b"= Start\n",
            b"@ [0x10] + 0x100 0x8\n",
            b"@ [0x20] > 0x100 0x30\n",  # realloc returning a live address
            b"@ [0x30] ! 0x100 0x40\n",  # failed realloc: nothing changes
            b"@ [0x40] + (nil) 0x7fffffff\n",  # failed malloc
            b"+ 0x200 0\n",  # no caller, size zero
            b"= End\n",
        ]
    )
    parsed = reader.finish()
    assert parsed.counters["failed_reallocs"] == 1
    assert parsed.counters["failed_allocations"] == 1
    table = render_mtrace_table(parsed, lambda _caller: None)
    assert table.splitlines()[0] == (
        "+ 0x0000000000000100 Realloc 3 duplicate: 0x00000008 0x10 0x20"
    )
    assert "0x0000000000000200        0  at \n" in table


def test_an_allocation_without_a_caller_says_so(tmp_path: Path) -> None:
    """glibc logs no caller where it could not place the call; its table prints "at " and the
    report's frame says the log had none (it showed a bare 0x0 frame)."""
    log = tmp_path / "nocaller.log"
    log.write_text("= Start\n+ 0x5581a2b3c010 0x10\n@ [0x401136] + 0x5581a2b3c030 0x20\n= End\n")
    done = run_cli("mtrace", "--format", "json", str(log))
    assert done.returncode == 0, done.stderr
    records = {r["bytes"]: r for r in json.loads(done.stdout)["records"]}
    assert [f["function"] for f in records[16]["frames"]] == ["(no caller in the log)"]
    assert [f["address"] for f in records[32]["frames"]] == [0x401136]
    folded = run_cli("mtrace", "--format", "folded", str(log))
    assert "(no caller in the log) 16" in folded.stdout.splitlines()
    table = run_cli("mtrace", str(log))
    assert "0x00005581a2b3c010     0x10  at \n" in table.stdout


def test_long_log_streams(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    with log.open("w") as out:
        out.write("= Start\n")
        for i in range(200_000):
            out.write(f"@ ./prog:[0x{0x1100 + i % 7:x}] + {0x10000 + i * 32:#x} 0x20\n")
            if i % 4:
                out.write(f"@ ./prog:[0x11ff] - {0x10000 + i * 32:#x}\n")
        out.write("= End\n")
    parsed = read_mtrace_log(str(log))
    assert len(parsed.live) == 50_000
    assert parsed.counters["allocations"] == 200_000
    assert parsed.counters["frees"] == 150_000
