"""Sampling mode (`leaktrace run --sample BYTES`): blocks are recorded with probability
1 - exp(-size/BYTES) and the report scales them back into estimates with 95% intervals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from leakharness import compile_program, leaktrace, marker_line, records_from, run_traced

SOURCE = "sampled_leak.c"
OPT_LEVELS = ["-O0", "-O2"]
LEAK_SIZE = 1000


def test_sampling_every_byte_gives_the_exact_totals(build_dir: Path, tmp_path: Path) -> None:
    """A 1-byte mean samples every block of 1000 bytes with probability 1 - e^-1000 = 1: the
    estimates must equal the truth exactly, and still be labelled as estimates."""
    exe = compile_program(SOURCE, build_dir, "-O2")
    run = run_traced(exe, "300", work=tmp_path, options=("--sample", "1"))
    assert run.returncode == 0, run.stderr
    [record] = records_from(run.report, SOURCE, "sampled")
    assert (record["blocks"], record["bytes"]) == (300, 300 * LEAK_SIZE)
    assert record["estimate"] == {"sampled_blocks": 300,
                                  "bytes_interval": [300 * LEAK_SIZE, 300 * LEAK_SIZE]}
    assert run.report["sample_mean_bytes"] == 1
    assert run.report["summary"]["definitely_lost"]["bytes_interval"] == [300_000, 300_000]
    assert "sampling mode (--sample 1)" in run.stderr
    assert "~300,000 bytes in ~300 blocks are definitely lost" in run.stderr


def test_sampled_estimate_is_close_and_frees_of_unsampled_blocks_are_not_unknown(
        build_dir: Path, tmp_path: Path) -> None:
    """20,000 leaked blocks of 1000 bytes at a 4 KiB mean: about 4,300 samples, so the
    estimate's standard error is 1.3%; 10% off would be 7 standard errors."""
    exe = compile_program(SOURCE, build_dir, "-O2")
    run = run_traced(exe, "20000", work=tmp_path, options=("--sample", "4096"))
    assert run.returncode == 0, run.stderr
    [record] = records_from(run.report, SOURCE, "sampled")
    truth = 20_000 * LEAK_SIZE
    assert abs(record["bytes"] - truth) < truth * 0.10
    assert 3_000 < record["estimate"]["sampled_blocks"] < 5_600
    low, high = record["estimate"]["bytes_interval"]
    assert low < record["bytes"] < high and high - low < truth * 0.2
    # 400,000 frees, nearly all of blocks never sampled: none of them is an "unknown free".
    assert run.report["counters"].get("unknown_frees", 0) < 10
    assert "estimated from" in run.stderr


def test_sample_option_refuses_a_bad_value(tmp_path: Path) -> None:
    from leakharness import assert_one_line_error

    done = leaktrace("run", "--sample", "0", "--", "/bin/true", cwd=tmp_path)
    assert_one_line_error(done, "--sample")


def test_sampling_calls_no_function_of_the_program_and_loads_no_library(
        build_dir: Path, tmp_path: Path) -> None:
    """The sampling intervals' logarithm is the shim's own: a `log` the program exports (its
    logging helper) ran once per sample, and libm was loaded into a program without it."""
    for opt in ("-O0", "-O2"):
        exe = compile_program("own_log.c", build_dir, opt, ["-rdynamic", "-fno-builtin"])
        native = subprocess.run([str(exe), "1000"], capture_output=True, text=True, check=True)
        assert native.stdout == "log called 1 time(s); libm not loaded\n"
        run = run_traced(exe, "1000", work=tmp_path, options=("--sample", "4096"))
        assert run.returncode == 0, run.stderr
        assert run.stdout == native.stdout
        [record] = records_from(run.report, "own_log.c", "each_block")
        assert record["estimate"]["sampled_blocks"] > 300  # 1000 blocks at p = 0.63


CXX_SOURCE = "sampled_new.cpp"
CXX_SITES = (("object", "operator new(unsigned long)"), ("array", "operator new[](unsigned long)"))


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_sampled_cxx_blocks_keep_their_operator_line_and_totals(build_dir: Path, tmp_path: Path,
                                                                opt: str) -> None:
    """In sampling mode a new whose block is not sampled, and the delete of a block never
    recorded, go straight to the allocator; a sampled one still goes through the C++ runtime.
    At a 1-byte mean every block is sampled: exact totals, each record named after the operator
    the program called, at its line, and every delete found. At 4 KiB, most go straight: the
    estimates stay within 10% (about 4,300 samples each) and no delete is of an unknown block."""
    exe = compile_program(CXX_SOURCE, build_dir, opt)
    run = run_traced(exe, "300", work=tmp_path, options=("--sample", "1"))
    assert run.returncode == 0, run.stderr
    for marker, api in CXX_SITES:
        [record] = records_from(run.report, CXX_SOURCE, marker)
        assert (record["kind"], record["blocks"], record["bytes"]) == (api, 300, 300_000), marker
        first = record["frames"][0]
        assert (Path(first["file"]).name, first["line"]) == \
            (CXX_SOURCE, marker_line(CXX_SOURCE, marker)), marker
    assert run.report["summary"]["definitely_lost"]["blocks"] == 600

    run = run_traced(exe, "20000", work=tmp_path, options=("--sample", "4096"))
    assert run.returncode == 0, run.stderr
    truth = 20_000 * 1000
    for marker, api in CXX_SITES:
        [record] = records_from(run.report, CXX_SOURCE, marker)
        assert record["kind"] == api, marker
        assert abs(record["bytes"] - truth) < truth * 0.10, (marker, record["bytes"])
    assert run.report["counters"].get("unknown_frees", 0) < 10


def test_sampling_mode_keeps_the_new_handler_and_bad_alloc(build_dir: Path,
                                                            tmp_path: Path) -> None:
    """A new the allocator cannot serve, in sampling mode, must still run the program's
    new-handler and then throw std::bad_alloc, as the C++ runtime's new does. At a 1 GiB mean
    the 1 MiB blocks are rarely sampled, so most of them take sampling mode's shortcut."""
    exe = compile_program("new_handler.cpp", build_dir, "-O2")
    native = subprocess.run([str(exe), "128"], capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == \
        (0, "new-handler ran 2 times, then std::bad_alloc\n")
    run = run_traced(exe, "128", work=tmp_path, options=("--sample", "1073741824"))
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout), run.stderr


def test_a_program_with_its_own_malloc_gets_its_news_in_sampling_mode(build_dir: Path,
                                                                       tmp_path: Path) -> None:
    """The shortcut is taken only where the runtime's new would reach the shim's malloc: a
    program that defines malloc and free must have every new and delete served by them."""
    exe = compile_program("own_malloc_new.cpp", build_dir, "-O2")
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert native.stdout == "the program's malloc served 2000 blocks, its free took 2000\n"
    capture = tmp_path / "own.lt"
    done = leaktrace("run", "--sample", "4096", "-o", str(capture), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_sampled_blocks_get_their_leak_kinds_through_blocks_not_sampled(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """A sampled block that only unsampled blocks point to was "definitely lost": payloads
    held by list nodes the sampler did not record (16 bytes: sampled with p = 0.4% at 4 KiB)
    all were, and so were most of the blocks of node, ruby or gdb. The heap's chunks that are
    not sampled now join the scan: each payload kind holds its true 20 MB within 10% (about
    4,300 samples each), as exact mode gives it."""
    exe = compile_program("sampled_graph.c", build_dir, opt)
    exact = run_traced(exe, "20000", work=tmp_path)
    sampled = run_traced(exe, "20000", work=tmp_path, options=("--sample", "4096"))
    line = marker_line("sampled_graph.c", "payload")
    for run in (exact, sampled):
        assert run.returncode == 0, run.stderr
        by_kind: dict[str, int] = {}
        for record in run.report["records"]:
            first = record["frames"][0]
            if (Path(first["file"] or "").name, first["line"]) == ("sampled_graph.c", line):
                own = record["bytes"] if record["direct_bytes"] is None else record["direct_bytes"]
                by_kind[record["leak_kind"]] = by_kind.get(record["leak_kind"], 0) + own
        assert set(by_kind) == {"definitely lost", "indirectly lost", "still reachable"}, by_kind
        for kind, total in by_kind.items():
            assert abs(total - 20_000_000) < 2_000_000, (kind, total)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_sampled_reallocs_keep_totals_and_find_every_free(build_dir: Path, tmp_path: Path,
                                                          opt: str) -> None:
    """A realloc of a block never recorded whose new size is not sampled goes straight to the
    allocator; one sampled is recorded at its new size. At a 1-byte mean: exact totals, under
    realloc's name and at its line. At 4 KiB: within 10% (about 4,300 samples), and no free
    of a grown block is of an unknown one."""
    source = "sampled_realloc.c"
    exe = compile_program(source, build_dir, opt)
    run = run_traced(exe, "300", work=tmp_path, options=("--sample", "1"))
    assert run.returncode == 0, run.stderr
    [record] = records_from(run.report, source, "grown")
    assert (record["kind"], record["blocks"], record["bytes"]) == ("realloc", 300, 300_000)
    assert run.report["summary"]["definitely_lost"]["blocks"] == 300

    run = run_traced(exe, "20000", work=tmp_path, options=("--sample", "4096"))
    assert run.returncode == 0, run.stderr
    [record] = records_from(run.report, source, "grown")
    assert abs(record["bytes"] - 20_000_000) < 2_000_000, record["bytes"]
    assert run.report["counters"].get("unknown_frees", 0) < 10
    # A recorded 16-byte block left in the table by a realloc would leak ~4 KB (1/p) each.
    assert run.report["summary"]["definitely_lost"]["bytes"] - record["bytes"] < 100_000


def test_the_sampled_scan_short_of_address_space(build_dir: Path, tmp_path: Path) -> None:
    """Following 2 M blocks not sampled needs about 190 MB of scan records. A program that capped
    its address space's soft limit 64 MiB above its use gets them anyway (the process is
    ending: the limit rises to the hard one, as for the scan itself); with the hard limit
    capped too, the scan follows sampled blocks only, and the report says so."""
    exe = compile_program("sampled_graph.c", build_dir, "-O2")
    line = marker_line("sampled_graph.c", "payload")
    soft = run_traced(exe, "20000", "cap", work=tmp_path, options=("--sample", "4096"))
    assert (soft.returncode, soft.stdout) == (0, "20000 rounds\n"), soft.stderr
    assert soft.report["counters"].get("scan_unrecorded_missed", 0) == 0
    assert soft.report["counters"]["scan_unrecorded_blocks"] > 2_000_000
    kept = [r for r in soft.report["records"] if r["leak_kind"] == "still reachable"
            and (Path(r["frames"][0]["file"] or "").name, r["frames"][0]["line"])
            == ("sampled_graph.c", line)]
    assert abs(sum(r["bytes"] for r in kept) - 20_000_000) < 2_000_000

    hard = run_traced(exe, "20000", "hardcap", work=tmp_path, options=("--sample", "4096"))
    assert (hard.returncode, hard.stdout) == (0, "20000 rounds\n"), hard.stderr
    assert hard.report["counters"]["scan_unrecorded_missed"] == 1
    assert any("no memory for the heap's blocks without a record" in n
               for n in hard.report["notes"]), hard.report["notes"]
