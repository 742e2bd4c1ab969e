"""Public leak-checker cases (LLVM's compiler-rt/test/lsan/TestCases, rewritten as one plain
program, tests/programs/lsan_cases.c): where the only pointer to a block sits decides its kind.
Each case is run under leaktrace and, where installed, under valgrind: the kind of the case's
block is the one written next to it, and leaktrace's LEAK SUMMARY equals valgrind's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from leakharness import allocation_site, compile_program, marker_line, run_traced
from memcheck_text import needs_valgrind, run_memcheck
from native_programs import compile_source

SOURCE = "lsan_cases.c"
SIZE = 1337
DEFINITE, INDIRECT, REACHABLE = "definitely_lost", "indirectly_lost", "still_reachable"

CASES = {
    "stale_stack": DEFINITE,
    "exit_atexit_stale_stack": DEFINITE,
    "use_globals_initialized": REACHABLE,
    "use_globals_uninitialized": REACHABLE,
    "use_tls_static": REACHABLE,
    "use_unaligned": DEFINITE,
    "pointer_to_self": DEFINITE,
    "use_stacks_threaded": REACHABLE,
    "finished_detached_thread": DEFINITE,
    "use_tls_pthread_specific_static": REACHABLE,
    "use_tls_pthread_specific_dynamic": REACHABLE,
    "use_swapcontext_stack": REACHABLE,
    "thread_on_heap_stack": REACHABLE,
    "thread_starting_at_exit": REACHABLE,
    "use_registers_extra": REACHABLE,
    "use_registers_ymm_upper": REACHABLE,
    "use_registers_zmm17": REACHABLE,
    "realloc_failure_keeps_original": DEFINITE,
    "joined_thread_return_value": DEFINITE,
    "exit_in_tsd_destructor": REACHABLE,
    "large_allocation_leak": DEFINITE,
    "pointer_past_unreadable_pages": INDIRECT,
}
# The case's block where it is not SIZE bytes, and what else is definitely lost.
SIZES = {"large_allocation_leak": 32 << 20}
OTHER_DEFINITE = {"pointer_past_unreadable_pages": (10 << 20, 1)}
# The CPU feature each vector register case needs (its instructions fault without it).
NEEDS_CPU = {"use_registers_ymm_upper": "avx", "use_registers_zmm17": "avx512f"}
# valgrind does not read the stack a thread left for a context of its own: it finds only the
# stack pointer inside the context's block, and calls that block and the case's block possibly
# lost (and the thread's TLS vector definitely lost). leaktrace reads the left stack as memory
# and finds the context there, which points to the block's start.
# valgrind reads only the general-purpose registers: a pointer held only in a vector register
# (LeakSanitizer counts them) is definitely lost there.
# valgrind's client heap lies low (from 0x4a00000 or so), so a 32 MiB block there spans the
# integers 78-111 million, and words that are not pointers read as interior ones into it: ld.so's
# tables of symbol versions (struct r_found_version) hold their ELF hashes, GLIBC_2.10's
# 0x06969190, GLIBC_2.11's 0x06969191 and on, and valgrind calls the block possibly lost
# (memcheck's who_points_at lists those words).
# glibc maps it near 0x7f0000000000, where no small integer reaches.
# The same low heap makes pointer_past_unreadable_pages's 10 MiB block (at 0x4a41040, so the
# integers 77.9-88.4 million) possibly lost under valgrind whenever ld.so's `relocate_time`, the
# CPU cycles its relocation took, lands in that range: memcheck's who_points_at names that word
# alone. A cycle count: every run for an hour here, after full test runs it never touched.
VALGRIND_DIFFERS = {"thread_on_heap_stack", "use_registers_extra", "use_registers_ymm_upper",
                    "use_registers_zmm17", "large_allocation_leak",
                    "pointer_past_unreadable_pages"}
KIND_NAMES = {"definitely lost": "definitely_lost", "indirectly lost": "indirectly_lost",
              "possibly lost": "possibly_lost", "still reachable": "still_reachable"}


@pytest.fixture(scope="module")
def programs(build_dir: Path) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def program(opt: str) -> Path:
        if opt not in built:
            built[opt] = compile_program(SOURCE, build_dir, opt, output=f"lsan_cases{opt}")
        return built[opt]

    return program


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _summary(report: dict) -> dict[str, tuple[int, int]]:
    s = report["summary"]
    return {name: (s[name]["bytes"], s[name]["blocks"]) for name in KIND_NAMES.values()}


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_case_block_has_the_expected_kind(programs: Callable[[str], Path], tmp_path: Path,
                                          case: str, opt: str) -> None:
    if case in NEEDS_CPU and NEEDS_CPU[case] not in _cpu_flags():
        pytest.skip(f"the CPU has no {NEEDS_CPU[case]}")
    run = run_traced(programs(opt), case, work=tmp_path)
    assert run.returncode == 0, run.stderr
    site = (SOURCE, marker_line(SOURCE, "lsan"))
    records = [r for r in run.report["records"] if allocation_site(r, SOURCE) == site]
    size = SIZES.get(case, SIZE)
    assert [(r["bytes"], r["blocks"], r["leak_kind"]) for r in records] == [
        (size, 1, CASES[case].replace("_", " "))], records
    # glibc's own thread data (a finished thread's TLS vector) is never a definite leak.
    definite = (size, 1) if CASES[case] == DEFINITE else OTHER_DEFINITE.get(case, (0, 0))
    assert _summary(run.report)[DEFINITE] == definite


@needs_valgrind
@pytest.mark.parametrize("case", sorted(set(CASES) - VALGRIND_DIFFERS))
def test_case_summary_equals_valgrind(programs: Callable[[str], Path], tmp_path: Path,
                                      case: str) -> None:
    exe = programs("-O2")
    run = run_traced(exe, case, work=tmp_path, options=("--show", "all"))
    valgrind = run_memcheck(exe, case)
    ours = _summary(run.report)
    theirs = {KIND_NAMES[k]: v for k, v in valgrind.summary.kinds.items()}
    # A thread's TLS vector (glibc's, possibly lost under both: it is pointed to 16 bytes in)
    # has one more slot under leaktrace, whose shim has thread-local data of its own: 16 bytes.
    blocks = ours["possibly_lost"][1]
    if case == "finished_detached_thread":
        # The finished thread's vector stays in glibc's stack cache, which valgrind's run of
        # glibc's freeres empties at exit; leaktrace runs freeres only when no other thread
        # runs, and one does here (docs/user-guide.md, "The default suppressions").
        vector, _ = theirs["possibly_lost"]
        assert theirs["possibly_lost"][1] == 1
        assert ours["possibly_lost"] == (2 * (vector + 16), 2)
    else:
        assert ours["possibly_lost"] == (theirs["possibly_lost"][0] + 16 * blocks, blocks)
    del ours["possibly_lost"], theirs["possibly_lost"]
    assert ours == theirs


def test_ten_runs_give_the_same_kinds(build_dir: Path, tmp_path: Path) -> None:
    """Address layout changes from run to run (ASLR, thread timing): the verdicts must not."""
    exe = compile_program("leak_cases.c", build_dir, "-O2", output="leak_cases-ten-runs")
    summaries = []
    for i in range(10):
        work = tmp_path / str(i)
        work.mkdir()
        summaries.append(_summary(run_traced(exe, work=work).report))
    assert all(s == summaries[0] for s in summaries), summaries
    assert summaries[0]["definitely_lost"][1] > 0 and summaries[0]["indirectly_lost"][1] > 0


# LSan's Linux/use_tls_dynamic.cpp: a library loaded by dlopen whose thread-local data is too big
# for glibc's static TLS surplus, so each thread's copy is a block ld.so allocates on first use.
TLS_LIBRARY = r"""
__thread void *huge_thread_local_array[(1 << 20) / sizeof(void *)];
void store_in_tls(void *p) { huge_thread_local_array[0] = p; }
"""
TLS_PROGRAM = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    void *library = argc > 1 ? dlopen(argv[1], RTLD_LAZY) : NULL;
    void (*store_in_tls)(void *) =
        library ? (void (*)(void *))dlsym(library, "store_in_tls") : NULL;
    if (!store_in_tls) {
        fprintf(stderr, "%s\n", dlerror());
        return 1;
    }
    store_in_tls(malloc(1337));
    return 0;
}
"""


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_a_pointer_in_a_dlopened_librarys_thread_local_data_is_a_root(tmp_path: Path,
                                                                      opt: str) -> None:
    library = compile_source(tmp_path, "tls_library.c", TLS_LIBRARY, opt, "-fPIC", "-shared")
    exe = compile_source(tmp_path, "tls_program.c", TLS_PROGRAM, opt, "-ldl")
    run = run_traced(exe, str(library), work=tmp_path)
    assert run.returncode == 0, run.stderr
    [block] = [r for r in run.report["records"] if r["bytes"] == 1337]
    assert (block["blocks"], block["leak_kind"]) == (1, "still reachable")
    # The thread's copy of the library's data: a block ld.so made, found through the thread's
    # dynamic thread vector.
    [tls] = [r for r in run.report["records"] if r["bytes"] == 1 << 20]
    assert tls["leak_kind"] == "still reachable"
    assert _summary(run.report)[DEFINITE] == (0, 0)
