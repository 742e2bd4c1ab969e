"""Leak kinds from the shim's reachability scan, on real programs under the real shim: valgrind's
nine pointer-chain shapes, lost cycles and trees, roots in odd places, and the four C++
heuristics. Exact bytes, blocks, kinds and allocation lines; where valgrind is installed, the
same binaries under memcheck must give the same LEAK SUMMARY (and, where sizes tell the records
apart, the same loss records and numbers)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from leakharness import (
    LEAKTRACE,
    allocation_site,
    assert_one_line_error,
    compile_program,
    leaktrace,
    marker_line,
    run_traced,
)
from memcheck_text import (
    VALGRIND,
    MemcheckRun,
    needs_valgrind,
    parse_leak_summary,
    run_memcheck,
)

OPT_LEVELS = ["-O0", "-O2"]
DEFINITE, INDIRECT = "definitely lost", "indirectly lost"
POSSIBLE, REACHABLE = "possibly lost", "still reachable"


@dataclass
class Traced:
    exe: Path
    args: tuple[str, ...]
    capture: Path
    report: dict[str, Any]  # JSON report: every kind, no default suppressions

    def summary(self) -> dict[str, tuple[int, int]]:
        s = self.report["summary"]
        return {kind: (s[kind.replace(" ", "_")]["bytes"], s[kind.replace(" ", "_")]["blocks"])
                for kind in (DEFINITE, INDIRECT, POSSIBLE, REACHABLE)}

    def records_through(self, source: str, marker: str) -> list[dict[str, Any]]:
        """Loss records whose stack passes through the line of `marker` in `source`."""
        line = marker_line(source, marker)
        return [r for r in self.report["records"] if line in _lines_in(r, source)]

    def shapes(self, source: str, marker: str) -> set[tuple[str, int, int, int]]:
        """(leak kind, direct bytes, indirect bytes, blocks) of those records."""
        return {(r["leak_kind"], r["direct_bytes"], r["indirect_bytes"], r["blocks"])
                for r in self.records_through(source, marker)}

    def by_kind(self, source: str, marker: str) -> dict[str, tuple[int, int, int]]:
        """{leak kind: (direct bytes, indirect bytes, blocks)} added up over those records:
        at -O2 a loop may be unrolled into calls of its own, each its own record."""
        totals: dict[str, tuple[int, int, int]] = {}
        for r in self.records_through(source, marker):
            direct, indirect, blocks = totals.get(r["leak_kind"], (0, 0, 0))
            totals[r["leak_kind"]] = (direct + r["direct_bytes"],
                                      indirect + r["indirect_bytes"], blocks + r["blocks"])
        return totals


def _lines_in(record: dict[str, Any], source: str) -> list[int]:
    return [f["line"] for f in record["frames"]
            if f.get("file") and Path(f["file"]).name == source and f.get("line")]


@pytest.fixture(scope="session")
def traced(build_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Callable[..., Traced]:
    """traced(source, opt, *args): compile once, run once under leaktrace."""
    runs: dict[tuple[str, str, tuple[str, ...]], Traced] = {}

    def run(source: str, opt: str, *args: str) -> Traced:
        key = (source, opt, args)
        if key not in runs:
            exe = _compiled(build_dir, source, opt)
            work = tmp_path_factory.mktemp("leak-kinds")
            done = run_traced(exe, *args, work=work)
            assert done.returncode == 0, done.stderr
            runs[key] = Traced(exe, args, done.capture, done.report)
        return runs[key]

    return run


_executables: dict[tuple[str, str], Path] = {}


def _compiled(build_dir: Path, source: str, opt: str) -> Path:
    if (source, opt) not in _executables:
        _executables[(source, opt)] = compile_program(source, build_dir, opt)
    return _executables[(source, opt)]


@pytest.fixture(scope="session")
def memcheck() -> Callable[[Traced], MemcheckRun]:
    """memcheck(traced_run): the same binary and arguments under valgrind, run once."""
    runs: dict[tuple[Path, tuple[str, ...]], MemcheckRun] = {}

    def run(t: Traced) -> MemcheckRun:
        if VALGRIND is None:
            pytest.skip("valgrind is not installed")
        key = (t.exe, t.args)
        if key not in runs:
            runs[key] = run_memcheck(t.exe, *t.args)
        return runs[key]

    return run


# --- valgrind's nine pointer-chain shapes ------------------------------------------------

CASES = "leak_cases.c"
A = {n: 32 + 16 * n for n in range(1, 10)}  # sizes of the A and B blocks of case n
B = {n: 24 + 16 * n for n in range(1, 10)}
EXPECTED_CASES = {
    # call-site marker: {(leak kind, direct bytes, indirect bytes, blocks)}
    "a1": {(REACHABLE, A[1], 0, 1)},
    "a2": {(REACHABLE, A[2], 0, 1), (REACHABLE, B[2], 0, 1)},
    "a3": {(DEFINITE, A[3], 0, 1)},
    "a4": {(DEFINITE, A[4], B[4], 1), (INDIRECT, B[4], 0, 1)},
    "a5": {(POSSIBLE, A[5], 0, 1)},
    "a6": {(REACHABLE, A[6], 0, 1), (POSSIBLE, B[6], 0, 1)},
    "a7": {(POSSIBLE, A[7], 0, 1), (POSSIBLE, B[7], 0, 1)},
    "a8": {(POSSIBLE, A[8], 0, 1), (POSSIBLE, B[8], 0, 1)},
    "a9": {(DEFINITE, A[9], B[9], 1), (INDIRECT, B[9], 0, 1)},
}
CASES_SUMMARY = {
    DEFINITE: (A[3] + A[4] + A[9], 3),
    INDIRECT: (B[4] + B[9], 2),
    POSSIBLE: (A[5] + B[6] + A[7] + B[7] + A[8] + B[8], 6),
    REACHABLE: (A[1] + A[2] + B[2] + A[6], 4),
}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_nine_pointer_chain_shapes(traced: Callable[..., Traced], opt: str) -> None:
    run = traced(CASES, opt)
    for marker, expected in EXPECTED_CASES.items():
        assert run.shapes(CASES, marker) == expected, marker
    records = run.report["records"]
    assert len(records) == 15 == run.report["records_total"]
    node_line = marker_line(CASES, "node")
    assert {allocation_site(r, CASES) for r in records} == {(CASES, node_line)}
    assert run.summary() == CASES_SUMMARY
    # A definitely lost record's bytes are its own plus what it owns, as valgrind prints.
    [case4] = [r for r in run.records_through(CASES, "a4") if r["leak_kind"] == DEFINITE]
    assert case4["bytes"] == A[4] + B[4]
    # Numbered as valgrind does: by total bytes, 1 the smallest; shown largest first.
    assert [r["loss_record"] for r in records] == list(range(15, 0, -1))
    totals = [r["bytes"] for r in records]
    assert totals == sorted(totals, reverse=True)


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_nine_shapes_agree_with_valgrind(traced: Callable[..., Traced],
                                         memcheck: Callable[[Traced], MemcheckRun],
                                         opt: str) -> None:
    run = traced(CASES, opt)
    valgrind = memcheck(run)
    assert valgrind.summary.kinds == run.summary() == CASES_SUMMARY
    # Every block has its own size: each loss record has one twin in valgrind's output, with
    # the same kind, bytes and loss record number.
    for marker in EXPECTED_CASES:
        line = marker_line(CASES, marker)
        ours = {(r["leak_kind"], r["bytes"], r["direct_bytes"], r["indirect_bytes"],
                 r["blocks"], r["loss_record"]) for r in run.records_through(CASES, marker)}
        theirs = {(r.leak_kind, r.bytes, r.direct, r.indirect, r.blocks, r.number)
                  for r in valgrind.records_through(CASES, line)}
        assert ours == theirs, marker
    assert {r.total for r in valgrind.records} == {15}


# --- lost structures, many small leaks, empty blocks -------------------------------------

STRUCTURES = "leak_structures.c"
STRUCTURES_SUMMARY = {
    # ring 40 + linked 56 + cut subtree 48 + 1000 bytes + malloc(0) + one-before 64
    DEFINITE: (40 + 56 + 48 + 1000 + 0 + 64, 1005),
    INDIRECT: (2 * 40 + (56 + 2 * 72) + 2 * 48, 7),
    POSSIBLE: (0, 0),
    REACHABLE: (4 * 48 + 0, 5),
}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_isolated_ring_is_one_definite_and_two_indirect(traced: Callable[..., Traced],
                                                        opt: str) -> None:
    run = traced(STRUCTURES, opt)
    assert run.by_kind(STRUCTURES, "ring") == {DEFINITE: (40, 80, 1), INDIRECT: (80, 0, 2)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_linked_cycles_form_one_lost_group(traced: Callable[..., Traced], opt: str) -> None:
    run = traced(STRUCTURES, opt)
    # One node of the cycle that points to the other leads: it owns its partner and both
    # nodes of the other cycle.
    assert run.by_kind(STRUCTURES, "linked_a") == {DEFINITE: (56, 56 + 2 * 72, 1),
                                                   INDIRECT: (56, 0, 1)}
    assert run.by_kind(STRUCTURES, "linked_b") == {INDIRECT: (2 * 72, 0, 2)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_tree_with_a_subtree_cut_off(traced: Callable[..., Traced], opt: str) -> None:
    run = traced(STRUCTURES, opt)
    assert run.by_kind(STRUCTURES, "tree") == {REACHABLE: (4 * 48, 0, 4),
                                               DEFINITE: (48, 96, 1), INDIRECT: (96, 0, 2)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_thousand_one_byte_leaks_from_one_line(traced: Callable[..., Traced], opt: str) -> None:
    run = traced(STRUCTURES, opt)
    [record] = run.records_through(STRUCTURES, "bytes")
    assert (record["leak_kind"], record["blocks"], record["bytes"]) == (DEFINITE, 1000, 1000)
    assert allocation_site(record, STRUCTURES) == (STRUCTURES, marker_line(STRUCTURES, "bytes"))


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_malloc_zero_kept_and_lost(traced: Callable[..., Traced], opt: str) -> None:
    run = traced(STRUCTURES, opt)
    assert run.shapes(STRUCTURES, "zero_kept") == {(REACHABLE, 0, 0, 1)}
    assert run.shapes(STRUCTURES, "zero_lost") == {(DEFINITE, 0, 0, 1)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pointer_one_byte_before_a_block_does_not_keep_it(traced: Callable[..., Traced],
                                                           opt: str) -> None:
    run = traced(STRUCTURES, opt)
    assert run.shapes(STRUCTURES, "before") == {(DEFINITE, 64, 0, 1)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_structures_summary(traced: Callable[..., Traced], opt: str) -> None:
    assert traced(STRUCTURES, opt).summary() == STRUCTURES_SUMMARY


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_structures_agree_with_valgrind(traced: Callable[..., Traced],
                                        memcheck: Callable[[Traced], MemcheckRun],
                                        opt: str) -> None:
    run = traced(STRUCTURES, opt)
    valgrind = memcheck(run)
    assert valgrind.summary.kinds == run.summary() == STRUCTURES_SUMMARY
    for marker in ("ring", "linked_a", "linked_b", "tree", "bytes", "zero_kept", "zero_lost",
                   "before"):
        line = marker_line(STRUCTURES, marker)
        ours = sorted((r["leak_kind"], r["direct_bytes"], r["indirect_bytes"], r["blocks"])
                      for r in run.records_through(STRUCTURES, marker))
        theirs = sorted((r.leak_kind, r.direct, r.indirect, r.blocks)
                        for r in valgrind.records_through(STRUCTURES, line))
        assert ours == theirs, marker


# --- roots in odd places -------------------------------------------------------------------

ROOTS = "leak_roots.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pointer_kept_in_an_application_mapping_is_a_root(traced: Callable[..., Traced],
                                                          opt: str) -> None:
    run = traced(ROOTS, opt)
    assert run.shapes(ROOTS, "mapped") == {(REACHABLE, 200, 0, 1)}
    # The two pages are memory mappings, not heap blocks: listed apart, never loss records.
    page = 4096
    regions = {allocation_site(r, ROOTS): r for r in run.report["mapped_regions"]}
    for marker in ("readable_page", "unreadable_page"):
        region = regions[(ROOTS, marker_line(ROOTS, marker))]
        assert (region["kind"], region["bytes"], region["blocks"]) == ("mmap", page, 1)
        assert region["leak_kind"] is None and region["loss_record"] is None
    assert run.report["summary"]["mapped"] == {"bytes": 2 * page, "blocks": 2}
    assert all(r["kind"] not in ("mmap", "mremap", "brk") for r in run.report["records"])


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pointer_only_in_an_unreadable_page_does_not_count(traced: Callable[..., Traced],
                                                           opt: str) -> None:
    run = traced(ROOTS, opt)
    assert run.shapes(ROOTS, "hidden") == {(DEFINITE, 300, 0, 1)}
    assert run.summary() == {DEFINITE: (300, 1), INDIRECT: (0, 0), POSSIBLE: (0, 0),
                             REACHABLE: (200, 1)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pointer_only_in_a_register_of_a_live_thread(traced: Callable[..., Traced],
                                                     opt: str) -> None:
    run = traced(ROOTS, opt, "thread")
    assert run.report["scan"]["threads_stopped"] == 1
    assert run.shapes(ROOTS, "register") == {(REACHABLE, 400, 0, 1)}
    assert run.shapes(ROOTS, "hidden") == {(DEFINITE, 300, 0, 1)}
    # Besides the program's blocks, only the thread's dynamic thread vector (made by
    # pthread_create), which the thread points into: possibly lost, as under valgrind.
    dtv = [r for r in run.report["records"]
           if "_dl_allocate_tls" in {f["function"] for f in r["frames"]}]
    assert [(r["leak_kind"], r["blocks"]) for r in dtv] == [(POSSIBLE, 1)]
    assert sorted((r["leak_kind"], r["direct_bytes"]) for r in run.report["records"]
                  if r not in dtv) == [(DEFINITE, 300), (REACHABLE, 200), (REACHABLE, 400)]


BREAK = "break_roots.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_memory_the_program_took_from_the_break_is_a_root(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    """The program's own sbrk()/brk() memory sits in the [heap] mapping beside glibc's main
    arena, whose chunks are not roots: its own part is (it was not: every block kept only
    there was called definitely lost). Given back with a negative sbrk, it is not any more."""
    run = traced(BREAK, opt)
    kinds = sorted((r["leak_kind"], r["direct_bytes"], r["blocks"]) for r in run.report["records"])
    assert kinds == [(DEFINITE, 24, 1), (DEFINITE, 72, 1), (REACHABLE, 40, 1), (REACHABLE, 56, 1)]
    assert run.shapes(BREAK, "lost") == {(DEFINITE, 24, 0, 1)}
    assert run.summary() == dict(memcheck(run).summary.kinds)


RED_ZONE = "red_zone.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_red_zone_is_a_root_only_where_the_thread_does_not_wait_in_a_system_call(
        traced: Callable[..., Traced], opt: str) -> None:
    """Below the stack pointer of a thread waiting in a system call lies the dead stack of its
    deeper calls before it, the malloc path's among them (a copy of a leaked block there
    read as still reachable in 10 of 12 runs of a control-socket scan): not read. A running
    leaf may keep a live local there: read, as valgrind does. (valgrind reads the waiter's
    too, and calls its block still reachable: a documented difference.)"""
    run = traced(RED_ZONE, opt)
    assert run.report["scan"]["threads_stopped"] == 2
    assert run.shapes(RED_ZONE, "waiter") == {(DEFINITE, 500, 0, 1)}
    assert run.shapes(RED_ZONE, "spinner") == {(REACHABLE, 600, 0, 1)}


DEAD_STACK = "dead_thread_stack.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("freeres", ["1", "0"])
def test_stale_pointer_on_a_dead_threads_cached_stack_does_not_count(
        build_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opt: str,
        freeres: str) -> None:
    """glibc keeps an exited thread's stack for reuse; without the run-time buffers freed at
    exit (LEAKTRACE_FREERES=0) it is still mapped at the scan, with the stale pointer on it."""
    monkeypatch.setenv("LEAKTRACE_FREERES", freeres)
    done = run_traced(_compiled(build_dir, DEAD_STACK, opt), work=tmp_path)
    assert done.returncode == 0, done.stderr
    where = (DEAD_STACK, marker_line(DEAD_STACK, "dead_stack"))
    site = [r for r in done.report["records"] if allocation_site(r, DEAD_STACK) == where]
    assert [(r["leak_kind"], r["direct_bytes"], r["blocks"]) for r in site] == [(DEFINITE, 700, 1)]
    assert done.report["summary"]["definitely_lost"] == {"bytes": 700, "blocks": 1}


def test_a_control_thread_that_starts_late_is_not_taken_for_the_programs(
        build_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim's control thread is made at the first allocation and learns its thread id when
    it first runs; on a loaded machine a short program reached its exit scan before that. The
    scan then signalled it (it blocks every signal) as a program thread, waited 2 s for it, and
    with a thread "not stopped" no stack could be told dead: the leak read still reachable
    (a CI failure). A library preloaded after the shim holds that thread back 1.5 s."""
    late = compile_program("slow_shim_threads.c", build_dir, "-O2",
                           extra=["-shared", "-fPIC", "-ldl"], output="slow_shim_threads.so")
    monkeypatch.setenv("LD_PRELOAD", str(late))
    monkeypatch.setenv("LEAKTRACE_FREERES", "0")
    done = run_traced(_compiled(build_dir, DEAD_STACK, "-O0"), work=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.report["scan"]["threads_not_stopped"] == 0
    assert done.report["summary"]["definitely_lost"] == {"bytes": 700, "blocks": 1}


def _assert_definitely_lost_as_valgrind(run: Traced, memcheck: Callable[[Traced], MemcheckRun],
                                        expected: tuple[int, int]) -> None:
    """(bytes, blocks) definitely lost in all, here and under valgrind."""
    assert run.summary()[DEFINITE] == expected
    assert dict(memcheck(run).summary.kinds)[DEFINITE] == expected


ALTERNATE_STACK = "alternate_stack_stale.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("args", [(), ("thread",)], ids=["main-thread", "stopped-thread"])
def test_stale_copies_on_an_alternate_signal_stack_do_not_count(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str,
        args: tuple[str, ...]) -> None:
    """A handler that ran on an alternate signal stack (mapped memory, a root) left copies of
    a block's address in its dead frames; the program then dropped the block. The dead part of
    each thread's alternate stack is not a root (all of it for the thread that scans; below
    the scan's own handler for a thread it stopped): definitely lost, as valgrind says. The
    whole stack was read before, and the block was still reachable."""
    run = traced(ALTERNATE_STACK, opt, *args)
    assert run.shapes(ALTERNATE_STACK, "alternate") == {(DEFINITE, 321, 0, 1)}
    _assert_definitely_lost_as_valgrind(run, memcheck, (321, 1))


SHIM_STACK_COPIES = "shim_stack_copies.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_the_shims_dead_frames_keep_no_copy_of_a_new_blocks_address(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    """The program drops a block, then copies 4 KiB of its dead stack (the unwritten part of a
    large local, as Rust copies a struct's unwritten padding) into a block it keeps. The shim's
    hook, its backtrace and its table insert ran there; each callee saved the registers it uses
    in its frame, and seven of those slots held the block's address: it was "still reachable"
    (ripgrep: 14 loss records valgrind calls possibly lost). Now the hook carries the address
    flipped from the allocator's return on (lt_hide_address): definitely lost, as valgrind
    says."""
    run = traced(SHIM_STACK_COPIES, opt)
    assert run.shapes(SHIM_STACK_COPIES, "dropped") == {(DEFINITE, 100, 0, 1)}
    assert run.shapes(SHIM_STACK_COPIES, "kept") == {(REACHABLE, 4096, 0, 1)}
    _assert_definitely_lost_as_valgrind(run, memcheck, (100, 1))


LEAVING_THREAD = "leaving_thread.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_a_thread_that_blocks_every_signal_while_it_ends(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """The thread blocks every signal, so it cannot stop for the scan, and ends 0.3 s after the
    exit scan began (as a thread in glibc's last steps, or one joined a moment before the exit,
    does sooner). The scan used to send it its signal, wait 2 s for it and read its stack
    whole; now the thread is not signalled and its stack is read from where it waits, so the
    pointer left below that keeps nothing alive (valgrind: definitely lost)."""
    done = run_traced(_compiled(build_dir, LEAVING_THREAD, opt), work=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.report["scan"]["threads_not_stopped"] == 1
    where = (LEAVING_THREAD, marker_line(LEAVING_THREAD, "leaving"))
    site = [r for r in done.report["records"] if allocation_site(r, LEAVING_THREAD) == where]
    assert [(r["leak_kind"], r["direct_bytes"], r["blocks"]) for r in site] == [(DEFINITE, 900, 1)]
    assert done.report["summary"]["definitely_lost"] == {"bytes": 900, "blocks": 1}


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("args", [(), ("thread",)], ids=["main-only", "thread"])
def test_roots_agree_with_valgrind(traced: Callable[..., Traced],
                                   memcheck: Callable[[Traced], MemcheckRun], opt: str,
                                   args: tuple[str, ...]) -> None:
    run = traced(ROOTS, opt, *args)
    valgrind = memcheck(run)
    ours, theirs = run.summary(), dict(valgrind.summary.kinds)
    if args:
        # The thread's DTV is possibly lost in both, but its size depends on how many loaded
        # objects use TLS, and the shim is one more: compare it by kind and count only.
        assert ours[POSSIBLE][1] == theirs[POSSIBLE][1] == 1
        del ours[POSSIBLE], theirs[POSSIBLE]
    assert ours == theirs
    for marker in ("mapped", "hidden", "register") if args else ("mapped", "hidden"):
        line = marker_line(ROOTS, marker)
        assert run.shapes(ROOTS, marker) == {
            (r.leak_kind, r.direct, r.indirect, r.blocks)
            for r in valgrind.records_through(ROOTS, line)}, marker


SPARSE = "sparse_mapping.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pointers_in_a_large_mostly_untouched_mapping_are_found(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    """A 256 MiB private anonymous mapping of which the program wrote two pages, and a 64 MiB
    reachable block likewise: the scan reads those pages and skips the ones never touched
    (zeros), so it finds the pointers in the middle and in the last word of each, and reads far
    less than the two (all of them before: 1.5 s for a 4 GiB mapping, 0.3 s for xz -9's 674 MiB
    of buffers). A shared anonymous mapping is read whole. As valgrind says."""
    run = traced(SPARSE, opt)
    big = 64 << 20
    for marker, size in (("middle", 100), ("last", 200), ("shared", 300), ("big", big),
                         ("in_big", 500), ("big_end", 600)):
        assert run.shapes(SPARSE, marker) == {(REACHABLE, size, 0, 1)}, marker
    assert run.shapes(SPARSE, "lost") == {(DEFINITE, 400, 0, 1)}
    assert run.summary() == {DEFINITE: (400, 1), INDIRECT: (0, 0), POSSIBLE: (0, 0),
                             REACHABLE: (600 + big + 1100, 6)}
    assert run.report["scan"]["root_bytes"] < 32 << 20, run.report["scan"]
    assert run.report["scan"]["bytes_scanned"] < 32 << 20, run.report["scan"]
    assert run.summary() == dict(memcheck(run).summary.kinds)


# --- the scan's page index over many blocks -------------------------------------------

INDEXED = "indexed_blocks.c"
KEPT_BYTES = 60 * (16 + 32 + 48 + 64 + 80)  # 300 blocks of 16 + (i % 5) * 16 bytes


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_blocks_found_through_the_page_index(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    """With 300 blocks and more the scan finds a word's block through a page index (the blocks
    starting in the word's page, the one before them else): start pointers into a page where
    many blocks start, a pointer 3 pages into a 1 MiB block glibc maps apart (a segment of its
    own), an interior pointer into a page where no block starts, one to a block's last byte in
    the page where the next block starts. Each block gets the kind valgrind gives it."""
    run = traced(INDEXED, opt)
    assert run.shapes(INDEXED, "kept") == {(REACHABLE, KEPT_BYTES, 0, 300)}
    for marker, size in (("far", 1 << 20), ("via_far", 40), ("after_tail", 48)):
        assert run.shapes(INDEXED, marker) == {(REACHABLE, size, 0, 1)}, marker
    assert run.shapes(INDEXED, "interior") == {(POSSIBLE, 64 << 10, 0, 1)}
    assert run.shapes(INDEXED, "tail") == {(POSSIBLE, 8000, 0, 1)}
    assert run.shapes(INDEXED, "lost") == {(DEFINITE, 64, 24, 1)}
    assert run.summary() == {DEFINITE: (64, 1), INDIRECT: (24, 1), POSSIBLE: (8000 + (64 << 10), 2),
                             REACHABLE: (KEPT_BYTES + (1 << 20) + 40 + 48, 303)}
    assert run.summary() == dict(memcheck(run).summary.kinds)


# --- old pointers in memory the allocator hands out again ----------------------------------

STALE = "stale_heap_words.c"
LOST_STRINGS = (10 + 400 + 8 + 800) * 14  # strdup of a 13-character string


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_old_pointers_in_a_reused_block_do_not_keep_leaks(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    """Arrays of pointers to strings are freed without the strings, and new blocks written only
    in part take their memory: one of the same size (glibc hands the chunk back), one grown in
    place by realloc over a freed array, one from aligned_alloc, one over a page (6,400
    bytes). The strings are definitely lost, as valgrind says; the blocks' own contents
    survive (the program checks realloc's)."""
    run = traced(STALE, opt)
    assert run.by_kind(STALE, "string") == {DEFINITE: (LOST_STRINGS, 0, 1218)}
    for marker, size in (("same_size", 80), ("grown", 3200), ("aligned", 64),
                         ("over_a_page", 6400)):
        assert run.shapes(STALE, marker) == {(REACHABLE, size, 0, 1)}, marker
    assert run.summary() == {DEFINITE: (LOST_STRINGS, 1218), INDIRECT: (0, 0), POSSIBLE: (0, 0),
                             REACHABLE: (80 + 3200 + 64 + 6400, 4)}
    assert run.summary() == dict(memcheck(run).summary.kinds)


@pytest.mark.parametrize("perturb, args", [({"MALLOC_PERTURB_": "85"}, []),
                                           ({"GLIBC_TUNABLES": "glibc.malloc.perturb=85"}, []),
                                           ({}, ["85"])],
                         ids=["MALLOC_PERTURB_", "tunable", "mallopt"])
def test_a_perturbed_heap_is_left_as_glibc_fills_it(build_dir: Path, tmp_path: Path,
                                                     perturb: dict[str, str],
                                                     args: list[str]) -> None:
    """A debugging run with glibc's perturbation (from the environment, or the program's own
    mallopt(M_PERTURB)): new blocks hold its pattern (0x55 ^ 0xff), not the zeros leaktrace
    clears them to otherwise."""
    exe = _compiled(build_dir, "fresh_bytes.c", "-O0")
    env = dict(os.environ, **perturb)
    native = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env,
                            check=True)
    assert native.stdout.startswith("aa aa ")  # (realloc's new bytes glibc leaves as they are)
    traced = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "f.lt"), "--", str(exe),
                             *args], capture_output=True, text=True, env=env, check=False)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == native.stdout


# --- the ending function's registers --------------------------------------------------

ENDINGS = {"exit": 3, "_exit": 4, "quick_exit": 5, "abort": -6, "kill": -15}


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("how", sorted(ENDINGS))
def test_a_block_held_in_a_register_where_the_program_ends_is_reachable(
        build_dir: Path, tmp_path: Path, opt: str, how: str) -> None:
    """At -O2 the only pointer is in a callee-saved register of the function that calls exit
    (or _exit, quick_exit, abort, or kill on itself); the C library saves it in frames the
    scan leaves out. It was definitely lost; valgrind says still reachable. The program ends
    as it does natively."""
    exe = _compiled(build_dir, "exit_holding_block.c", opt)
    done = subprocess.run([*LEAKTRACE, "run", "--format", "json", "--report-file", "-", "--",
                           str(exe), how], capture_output=True, text=True, check=False,
                          cwd=tmp_path)  # its capture goes there, not into the checkout
    native = subprocess.run([str(exe), how], capture_output=True, check=False)
    assert native.returncode == ENDINGS[how]
    assert done.returncode in (ENDINGS[how], 128 - ENDINGS[how]), done.stderr
    report = json.loads(done.stdout)
    assert (report["summary"]["still_reachable"]["bytes"],
            report["summary"]["definitely_lost"]["bytes"]) == (333, 0)


EXIT_INSIDE_LIBC = "exit_inside_libc.c"


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("option", ["--version", "--help"])
def test_exit_called_by_the_c_library_keeps_its_callers_frames_as_roots(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str,
        option: str) -> None:
    """argp_parse calls exit(0) itself for --version and --help, with its parser storage held
    in its own frame, which is still live: that block is still reachable, as valgrind says
    (leaktrace used to skip every libc frame up to main and call it definitely lost: getent
    --version and gencat --version reported a leak). The block dropped earlier stays lost."""
    run = traced(EXIT_INSIDE_LIBC, opt, option)
    kinds = {kind for kind, _, _, _ in run.shapes(EXIT_INSIDE_LIBC, "parser")}
    assert kinds == {REACHABLE}
    assert run.shapes(EXIT_INSIDE_LIBC, "dropped") == {(DEFINITE, 222, 0, 1)}
    assert run.summary()[DEFINITE] == (222, 1)
    assert run.summary() == dict(memcheck(run).summary.kinds)


# --- a block right before glibc's top chunk --------------------------------------------

NEXT_TO_TOP = "leak_next_to_top.cpp"
NEXT_TO_TOP_SUMMARY = {DEFINITE: (500, 1), INDIRECT: (0, 0), POSSIBLE: (0, 0),
                       REACHABLE: (64, 1)}


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_block_before_top_chunk_under_valgrind(traced: Callable[..., Traced],
                                               memcheck: Callable[[Traced], MemcheckRun],
                                               opt: str) -> None:
    assert memcheck(traced(NEXT_TO_TOP, opt)).summary.kinds == NEXT_TO_TOP_SUMMARY


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_block_before_top_chunk_is_definitely_lost(traced: Callable[..., Traced],
                                                   opt: str) -> None:
    """glibc's main_arena.top points at the top chunk's header, 496 bytes into this 500-byte
    block: not a pointer of the program's, so the block is definitely lost, as valgrind says."""
    run = traced(NEXT_TO_TOP, opt)
    assert run.shapes(NEXT_TO_TOP, "next_to_top") == {(DEFINITE, 500, 0, 1)}
    assert run.summary() == NEXT_TO_TOP_SUMMARY


# --- a list link at the end of a record ---------------------------------------------------

LINK_AT_END = "link_at_record_end.c"
LINK_AT_END_SUMMARY = {DEFINITE: (0, 0), INDIRECT: (0, 0), POSSIBLE: (584 + 200 + 40, 3),
                       REACHABLE: (64, 1)}


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("record", ["worker", "entry", "small"])
def test_a_pointer_to_a_records_last_word_is_the_programs(traced: Callable[..., Traced],
                                                          opt: str, record: str) -> None:
    """The program's only pointer to each record points at the link in its last 8 bytes (from
    a global, a reachable block, main's live frame): the spot where glibc's header of the
    next chunk begins, which glibc's own data points at too. Here it is the program's: possibly
    lost, as valgrind says (it was taken for glibc's, and the record called definitely lost)."""
    run = traced(LINK_AT_END, opt)
    size = {"worker": 584, "entry": 200, "small": 40}[record]
    assert run.shapes(LINK_AT_END, record) == {(POSSIBLE, size, 0, 1)}
    assert run.summary() == LINK_AT_END_SUMMARY


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_records_pointed_at_their_last_word_under_valgrind(
        traced: Callable[..., Traced], memcheck: Callable[[Traced], MemcheckRun], opt: str) -> None:
    assert memcheck(traced(LINK_AT_END, opt)).summary.kinds == LINK_AT_END_SUMMARY


# --- C++ heuristics ------------------------------------------------------------------------

HEURISTICS = "leak_heuristics.cpp"
EXPECTED_HEURISTICS = {
    # heuristic: (blocks the program keeps as (bytes, via heuristic), )
    "stdstring": [(8, False), (24 + 100 + 1, True)],  # the object, its old-ABI buffer
    "length64": [(8 + 88, True)],
    "newarray": [(8 + 5 * 16, True)],  # the element count, then 5 elements of 16 bytes
    "multipleinheritance": [(40, True)],  # two vtable pointers, three longs
}


@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("heuristic", list(EXPECTED_HEURISTICS))
def test_cpp_heuristic_keeps_block_reachable(traced: Callable[..., Traced], opt: str,
                                             heuristic: str) -> None:
    run = traced(HEURISTICS, opt, heuristic)
    expected = EXPECTED_HEURISTICS[heuristic]
    line = marker_line(HEURISTICS, heuristic)
    records = [r for r in run.report["records"]
               if allocation_site(r, HEURISTICS) == (HEURISTICS, line)]
    assert sorted((r["leak_kind"], r["bytes"]) for r in records) == sorted(
        (REACHABLE, size) for size, _ in expected)
    via = sum(size for size, by_heuristic in expected if by_heuristic)
    summary = run.report["summary"]
    assert summary["reachable_via_heuristic"] == {heuristic: {"bytes": via, "blocks": 1}}
    assert (summary["still_reachable"]["bytes"], summary["possibly_lost"]["blocks"],
            summary["definitely_lost"]["blocks"]) == (sum(s for s, _ in expected), 0, 0)


@needs_valgrind
@pytest.mark.parametrize("opt", OPT_LEVELS)
@pytest.mark.parametrize("heuristic", list(EXPECTED_HEURISTICS))
def test_cpp_heuristics_agree_with_valgrind(traced: Callable[..., Traced],
                                            memcheck: Callable[[Traced], MemcheckRun],
                                            opt: str, heuristic: str) -> None:
    run = traced(HEURISTICS, opt, heuristic)
    valgrind = memcheck(run)
    assert valgrind.summary.kinds == run.summary()
    theirs = valgrind.summary.heuristics
    ours = {name: (t["bytes"], t["blocks"])
            for name, t in run.report["summary"]["reachable_via_heuristic"].items()}
    assert ours == theirs == {heuristic: (theirs[heuristic][0], 1)}


def _run_with_heuristics(exe: Path, work: Path, heuristics: str, which: str
                         ) -> subprocess.CompletedProcess[str]:
    capture = work / f"{which}.{heuristics or 'empty'}.lt"
    return subprocess.run(
        [*LEAKTRACE, "run", "-o", str(capture), "--format", "json", "--report-file",
         str(work / f"{capture.name}.json"), "--", str(exe), which],
        capture_output=True, text=True, cwd=work, timeout=120,
        env={**os.environ, "LEAKTRACE_HEURISTICS": heuristics})


def test_leaktrace_heuristics_turns_heuristics_off(build_dir: Path, tmp_path: Path) -> None:
    """LEAKTRACE_HEURISTICS (documented in `leaktrace --help` and the user guide): with the
    block's heuristic left out (none, or a list without it) its only pointer is an interior
    one, so it is possibly lost, as under valgrind --leak-check-heuristics=none; listed, it
    is still reachable via that heuristic."""
    exe = compile_program(HEURISTICS, build_dir, "-O2")
    kinds = {}
    for setting in ("none", "stdstring,multipleinheritance", "length64", "all"):
        done = _run_with_heuristics(exe, tmp_path, setting, "length64")
        assert done.returncode == 0, done.stderr
        report = json.loads((tmp_path / f"length64.{setting}.lt.json").read_text())
        summary = report["summary"]
        kinds[setting] = (summary["possibly_lost"]["bytes"], summary["still_reachable"]["bytes"],
                          summary["reachable_via_heuristic"], report["scan"]["heuristics"])
    via = {"length64": {"bytes": 96, "blocks": 1}}
    assert kinds == {
        "none": (96, 0, {}, []),
        "stdstring,multipleinheritance": (96, 0, {}, ["stdstring", "multipleinheritance"]),
        "length64": (0, 96, via, ["length64"]),
        "all": (0, 96, via, ["stdstring", "length64", "newarray", "multipleinheritance"]),
    }


@pytest.mark.parametrize("setting", ["stdstrng", "length64,bogus", "None"])
def test_unknown_heuristic_is_refused_before_the_run(build_dir: Path, tmp_path: Path,
                                                     setting: str) -> None:
    """The shim skips a name it does not know: a misspelt LEAKTRACE_HEURISTICS used to turn
    every heuristic off without a word. `run` refuses it, as valgrind refuses an unknown
    --leak-check-heuristics, before the program starts."""
    exe = compile_program(HEURISTICS, build_dir, "-O2")
    done = _run_with_heuristics(exe, tmp_path, setting, "length64")
    assert_one_line_error(done, "LEAKTRACE_HEURISTICS", "unknown heuristic")
    assert "kept" not in done.stdout  # the program never ran
    assert not list(tmp_path.glob("*.lt"))


# --- the text report, --show and --fail-on-leak ------------------------------------------

def _report_text(capture: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return leaktrace("report", str(capture), "--no-default-suppressions", *options)


def test_text_report_speaks_valgrind(traced: Callable[..., Traced]) -> None:
    run = traced(CASES, "-O2")
    done = _report_text(run.capture)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    # Definitely and possibly lost by default, largest first, numbered as valgrind does.
    total9 = A[9] + B[9]
    assert (f"{total9} ({A[9]} direct, {B[9]} indirect) bytes in 1 blocks are definitely lost "
            "in loss record 15 of 15") in text
    assert f"{A[5]} bytes in 1 blocks are possibly lost in loss record " in text
    assert "indirectly lost in loss record" not in text
    assert "still reachable in loss record" not in text
    assert "(9 of 15 shown; --show definite,possible)" in text
    assert "Reachable blocks (those to which a pointer was found) are not shown." in text
    # The LEAK SUMMARY reads exactly like valgrind's.
    summary = parse_leak_summary(text)
    assert summary.kinds == CASES_SUMMARY and summary.suppressed == (0, 0)
    # Cases 9, 4 and 3, largest first.
    positions = [text.index(f"are definitely lost in loss record {n} of 15")
                 for n in (15, 14, 4)]
    assert positions == sorted(positions)


def test_show_selects_leak_kinds(traced: Callable[..., Traced]) -> None:
    run = traced(CASES, "-O0")
    every = _report_text(run.capture, "--show", "all").stdout
    assert every.count(" in loss record ") == 15
    reachable = _report_text(run.capture, "--show", "reachable").stdout
    assert reachable.count(" are still reachable in loss record ") == 4
    assert reachable.count(" in loss record ") == 4
    indirect = _report_text(run.capture, "--show", "indirect,definite").stdout
    assert indirect.count(" in loss record ") == 5
    done = _report_text(run.capture, "--show", "lost")
    assert done.returncode == 2 and "unknown leak kind 'lost'" in done.stderr


def test_fail_on_leak_counts_the_chosen_kinds(traced: Callable[..., Traced]) -> None:
    capture = traced(ROOTS, "-O0").capture  # 300 bytes definitely lost, 200 reachable

    def exit_code(*options: str) -> int:
        done = _report_text(capture, *options)
        assert "Traceback" not in done.stderr
        return done.returncode

    assert exit_code("--fail-on-leak") == 99
    assert exit_code("--fail-on-leak=300") == 0  # not more than 300
    assert exit_code("--fail-on-leak=299") == 99
    assert exit_code("--fail-on-leak=0", "--fail-on-kinds", "possible") == 0
    assert exit_code("--fail-on-leak=499", "--fail-on-kinds", "all") == 99
    assert exit_code("--fail-on-leak=500", "--fail-on-kinds", "definite,reachable") == 0


def test_mapped_regions_have_their_own_section(traced: Callable[..., Traced]) -> None:
    text = _report_text(traced(ROOTS, "-O0").capture).stdout
    assert "== Memory mappings never unmapped (2 of 2 shown; not heap blocks" in text
    assert "4.0 KiB (4,096 bytes) in 1 region from mmap" in text
    assert "memory mappings never unmapped: 2 regions, 8.0 KiB (8,192 bytes)" in text

