"""`leaktrace run` on real programs under the real shim: exact counts, bytes, API kinds and
the file:line of each leaking call."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from leakharness import (
    LEAKTRACE,
    allocation_site,
    compile_program,
    json_report,
    leaktrace,
    marker_line,
    program_records,
    records_from,
    run_traced,
)
from native_programs import compile_source

from leaktrace.shim_library import find_shim_library

OPT_LEVELS = ["-O0", "-O2"]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_leak_three_calls_deep(build_dir: Path, tmp_path: Path, opt: str) -> None:
    exe = compile_program("three_deep.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 3  # the program's own exit code passes through
    [record] = program_records(run.report, "three_deep.c")
    assert (record["blocks"], record["bytes"], record["kind"]) == (10, 1000, "malloc")
    assert allocation_site(record, "three_deep.c") == (
        "three_deep.c",
        marker_line("three_deep.c", "level3"),
    )
    lines = [
        f["line"]
        for f in record["frames"]
        if f.get("file", "") and f["file"].endswith("three_deep.c")
    ]
    assert lines[:4] == [
        marker_line("three_deep.c", m) for m in ("level3", "level2", "level1", "main")
    ]
    functions = [f["function"] for f in record["frames"]]
    assert functions[:4] == ["level3", "level2", "level1", "main"]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_totals_of_one_backtrace_shared_by_many_threads_are_exact(
    build_dir: Path, tmp_path: Path, opt: str
) -> None:
    # Twelve threads at once on one backtrace: more threads than the shim keeps copies of
    # each backtrace's totals, so some threads share a copy.
    exe = compile_program("shared_stack_threads.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0
    [record] = records_from(run.report, "shared_stack_threads.c", "keep")
    assert (record["blocks"], record["bytes"], record["leak_kind"]) == (12_000, 384_000, None)
    assert record["total_allocations"] == 36_000
    assert record["total_allocated_bytes"] == 36_000 * 32


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_cpp_new_string_is_demangled(build_dir: Path, tmp_path: Path, opt: str) -> None:
    exe = compile_program("cpp_string.cpp", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0
    # Two records start on the `new` line: the std::string objects (operator new called
    # straight from make_name) and their character buffers (allocated inside libstdc++).
    records = records_from(run.report, "cpp_string.cpp", "new_string")
    assert len(records) == 2
    [objects] = [
        r for r in records if (r["frames"][0]["function"] or "").startswith("app::make_name")
    ]
    [buffers] = [r for r in records if r is not objects]
    # 3 objects of sizeof(std::string) == 32 bytes, demangled C++ frames. As valgrind shows
    # them: the API is the operator new the program called, libstdc++'s frame left out.
    assert (objects["blocks"], objects["bytes"], objects["kind"]) == \
        (3, 96, "operator new(unsigned long)")
    assert not any((f["function"] or "").startswith("operator new") for f in objects["frames"])
    # Their buffers: 40 'x' + one digit + NUL, in a capacity-80 buffer (81 bytes) each.
    assert (buffers["blocks"], buffers["bytes"]) == (3, 3 * 81)
    assert any("basic_string" in (f["function"] or "") for f in buffers["frames"])


# Each leak of cxx_operators.cpp: (marker, API as valgrind names it, bytes asked).
CXX_OPERATOR_LEAKS = [
    ("scalar", "operator new(unsigned long)", 8),
    ("array", "operator new[](unsigned long)", 40),
    ("counted_array", "operator new[](unsigned long)", 24),
    ("empty_array", "operator new[](unsigned long)", 0),
    ("nothrow_scalar", "operator new(unsigned long, std::nothrow_t const&)", 2),
    ("nothrow_array", "operator new[](unsigned long, std::nothrow_t const&)", 33),
    ("aligned_scalar", "operator new(unsigned long, std::align_val_t)", 128),
    ("aligned_array", "operator new[](unsigned long, std::align_val_t)", 256),
    ("aligned_nothrow_scalar",
     "operator new(unsigned long, std::align_val_t, std::nothrow_t const&)", 128),
    ("aligned_nothrow_array",
     "operator new[](unsigned long, std::align_val_t, std::nothrow_t const&)", 384),
    ("plain_malloc", "malloc", 7),
]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_each_operator_new_is_named_as_valgrind_names_it(build_dir: Path, tmp_path: Path,
                                                         opt: str) -> None:
    """The record's API is the operator new the program called, as valgrind names its
    replacement, and the backtrace starts at the `new` (libstdc++'s own operator frames are
    left out). new[] calls new, often as a tail call, so no frame of a backtrace says new[]:
    it was reported as malloc under `operator new(unsigned long)`. `new char[0]` is 0 bytes,
    as asked (the runtime allocates 1)."""
    exe = compile_program("cxx_operators.cpp", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    for marker, api, size in CXX_OPERATOR_LEAKS:
        [record] = records_from(run.report, "cxx_operators.cpp", marker)
        assert (record["kind"], record["bytes"], record["blocks"]) == (api, size, 1), marker
        first = record["frames"][0]
        assert (Path(first["file"]).name, first["line"]) == \
            ("cxx_operators.cpp", marker_line("cxx_operators.cpp", marker)), marker
    summary = run.report["summary"]
    assert summary["definitely_lost"] == {"bytes": sum(size for _, _, size in CXX_OPERATOR_LEAKS),
                                          "blocks": len(CXX_OPERATOR_LEAKS)}
    # `growth` names each backtrace's API the same way, so its stable ids are the report's.
    growth = json.loads(leaktrace("growth", "--format", "json", str(run.capture)).stdout)
    growth_kinds = {stack["stack_id"]: stack["kind"] for stack in growth["stacks"]}
    for marker, api, _ in CXX_OPERATOR_LEAKS:
        [record] = records_from(run.report, "cxx_operators.cpp", marker)
        assert growth_kinds[record["stack_id"]] == api, marker


OWN_OPERATOR_NEW = """#include <cstdlib>
#include <new>
void *operator new(std::size_t n)
{
    void *p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    return p;
}
void operator delete(void *p) noexcept { std::free(p); }
void *volatile sink;
__attribute__((noinline)) void lose() { sink = new long(1); } /* @leak:own */
int main() { lose(); sink = nullptr; return 0; }
"""


def test_a_programs_own_operator_new_is_named_as_valgrind_names_it(tmp_path: Path) -> None:
    """A program that defines operator new itself (gdb does) exports it (libstdc++ refers to
    it), so valgrind replaces it too and names the API after it: so does leaktrace, though the
    program's own function runs (the shim's hook never does: the program's definition comes
    first)."""
    from native_programs import compile_source

    exe = compile_source(tmp_path, "own_new.cpp", OWN_OPERATOR_NEW, "-O0")
    run = run_traced(exe, work=tmp_path)
    [record] = [r for r in run.report["records"] if r["leak_kind"] == "definitely lost"]
    assert (record["kind"], record["bytes"]) == ("operator new(unsigned long)", 8)
    assert record["frames"][0]["function"] == "lose()"


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_leak_in_a_thread(build_dir: Path, tmp_path: Path, opt: str) -> None:
    exe = compile_program("thread_leak.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    [record] = records_from(run.report, "thread_leak.c", "thread")
    assert (record["blocks"], record["bytes"], record["kind"]) == (5, 320, "malloc")
    assert record["frames"][0]["function"] == "worker"


EXPECTED_API_LEAKS = {
    # marker: (kind, blocks, bytes)
    "malloc": ("malloc", 1, 1001),
    "calloc": ("calloc", 1, 1002),
    "realloc": ("realloc", 1, 1003),
    "reallocarray": ("reallocarray", 1, 1004),
    "memalign": ("memalign", 1, 1005),
    "posix_memalign": ("posix_memalign", 1, 1006),
    "aligned_alloc": ("aligned_alloc", 1, 1024),
    "valloc": ("valloc", 1, 1008),
    "pvalloc": ("pvalloc", 1, 4096),
    "malloc0": ("malloc", 1, 0),
    "mmap": ("mmap", 1, 16 * 4096),
    "mmap_partial": ("mmap", 2, 6 * 4096),
    "mremap": ("mremap", 1, 12 * 4096),
    "sbrk": ("brk", 1, 4096),
}


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_every_api_and_no_false_leaks(build_dir: Path, tmp_path: Path, opt: str) -> None:
    exe = compile_program("all_apis.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0
    found = {}
    for marker in EXPECTED_API_LEAKS:
        records = records_from(run.report, "all_apis.c", marker)
        assert len(records) == 1, (marker, records)
        found[marker] = (records[0]["kind"], records[0]["blocks"], records[0]["bytes"])
    assert found == EXPECTED_API_LEAKS
    # Nothing else from the program: the freed realloc chains, aligned blocks, realloc to 0
    # and the failed malloc leave no record.
    assert len(program_records(run.report, "all_apis.c")) == len(EXPECTED_API_LEAKS)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_allocation_functions_looked_up_with_dlsym_are_traced(build_dir: Path, tmp_path: Path,
                                                               opt: str) -> None:
    # dlsym on libc's handle (ctypes.CDLL("libc.so.6").malloc) finds libc's own malloc; the
    # shim's dlsym hands out its hooks instead, and RTLD_NEXT still answers for the caller.
    exe = compile_program("looked_up.c", build_dir, opt, ["-ldl"])
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    run = run_traced(exe, work=tmp_path)
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout) == (
        0, "the next sigaction is the first: yes\n")
    found = {}
    for marker in ("handle", "calloc", "realloc", "default", "freed_by_handle", "freed_by_plt"):
        records = records_from(run.report, "looked_up.c", marker)  # -O2 unrolls the loop
        found[marker] = ({r["kind"] for r in records}, sum(r["blocks"] for r in records),
                         sum(r["bytes"] for r in records))
    assert found == {
        "handle": ({"malloc"}, 3, 963),
        "calloc": ({"calloc"}, 1, 100),
        "realloc": ({"realloc"}, 1, 555),
        "default": ({"malloc"}, 1, 64),
        "freed_by_handle": (set(), 0, 0),
        "freed_by_plt": (set(), 0, 0),
    }
    # Nothing else: the block realloc'd through libc's handle is gone.
    assert sum(r["blocks"] for r in program_records(run.report, "looked_up.c")) == 6
    assert run.report["counters"]["unknown_frees"] == 0


DLERROR_LIBRARY = """
#define _GNU_SOURCE
#include <dlfcn.h>
int own_function(void) { return 42; }
void *find_own(void)
{
    /* not a tail call: the library itself asks */
    void *volatile own = dlsym(RTLD_DEFAULT, "own_function");
    return own;
}
"""


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_dlsym_leaves_dlerror_and_scope_as_natively(build_dir: Path, tmp_path: Path,
                                                     opt: str) -> None:
    """dlsym(RTLD_DEFAULT) answers for its caller (the scope it searches, the object its error
    names), and a hook's own lookups must not drop the program's pending dlerror() message:
    under the old shim the message named the shim, was gone after usleep(), and a library
    loaded RTLD_LOCAL did not find its own function."""
    library = tmp_path / "libown.so"
    (tmp_path / "own.c").write_text(DLERROR_LIBRARY)
    subprocess.run(["gcc", "-g", opt, "-fPIC", "-shared", "-o", str(library),
                    str(tmp_path / "own.c")], check=True, capture_output=True)
    exe = compile_program("dlerror_state.c", build_dir, opt, ["-ldl"])
    native = subprocess.run([str(exe), str(library)], capture_output=True, text=True, timeout=60)
    run = run_traced(exe, str(library), work=tmp_path)
    assert native.returncode == 0, native.stdout
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout)
    assert "library's own function: found" in run.stdout
    summary = run.report["summary"]
    assert (summary["definitely_lost"]["blocks"], summary["possibly_lost"]["blocks"]) == (0, 0)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_malloc_and_free_leave_errno_as_natively(build_dir: Path, tmp_path: Path,
                                                 opt: str) -> None:
    # The shim's system calls inside the hooks that fail (a contended lock's futex wait,
    # a table mapped on a kernel without VMA names) must not show in errno.
    exe = compile_program("keeps_errno.c", build_dir, opt)
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    run = run_traced(exe, work=tmp_path)
    expected = "malloc changed errno 0 times, free 0; a failed malloc: NULL, errno ENOMEM\n"
    assert (native.returncode, native.stdout) == (0, expected)
    assert (run.returncode, run.stdout) == (0, expected), run.stderr


def test_dlclosed_library_still_symbolized(build_dir: Path, tmp_path: Path) -> None:
    plugin = compile_program(
        "dlopen_plugin.c", build_dir, "-O2", ["-shared", "-fPIC"], output="plugin.so"
    )
    exe = compile_program("dlopen_main.c", build_dir, "-O2", ["-ldl"])
    run = run_traced(exe, str(plugin), work=tmp_path)
    assert run.returncode == 0, run.stderr
    [record] = records_from(run.report, "dlopen_plugin.c", "plugin")
    assert (record["blocks"], record["bytes"]) == (7, 1400)
    assert record["frames"][0]["function"] == "plugin_alloc"
    assert Path(record["frames"][0]["module"]).name == "plugin.so"


def test_forked_child_is_not_traced_by_default(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("fork_child.c", build_dir, "-O0")
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0
    [record] = program_records(run.report, "fork_child.c")
    assert record["bytes"] == 111
    assert len(list(tmp_path.glob("*.lt"))) == 1  # no capture from the child


def test_forked_child_traced_with_follow_children(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("fork_child.c", build_dir, "-O0")
    run = run_traced(exe, work=tmp_path, options=("--follow-children",))
    [parent] = program_records(run.report, "fork_child.c")
    assert parent["bytes"] == 111
    children = [c for c in tmp_path.glob("*.lt") if c != run.capture]
    assert len(children) == 1
    from leakharness import json_report

    child_report = json_report(children[0])
    child_records = {
        allocation_site(r, "fork_child.c"): r for r in program_records(child_report, "fork_child.c")
    }
    child = child_records[("fork_child.c", marker_line("fork_child.c", "child"))]
    assert (child["blocks"], child["bytes"]) == (2, 444)


CHILDREN_LINE = re.compile(r"children together: definitely lost ([\d,]+) bytes in ([\d,]+) "
                           r"blocks, indirectly lost ([\d,]+) bytes in ([\d,]+) blocks, "
                           r"possibly lost ([\d,]+) bytes in ([\d,]+) blocks")


def children_together(stderr: str) -> tuple[int, ...]:
    found = CHILDREN_LINE.search(stderr)
    assert found, stderr
    return tuple(int(n.replace(",", "")) for n in found.groups())


def test_fail_on_leak_counts_the_followed_children(build_dir: Path, tmp_path: Path) -> None:
    """With --follow-children, --fail-on-leak counts each child's leaks as it counts the
    program's (a CI job running `make check` under leaktrace must fail when a test binary
    leaks): fork_child.c's parent loses nothing, its child 333 bytes (its first 222-byte
    block, and the parent's 111-byte one, whose pointer it overwrites)."""
    exe = compile_program("fork_child.c", build_dir, "-O0")
    for name in ("alone", "gated", "under"):
        (tmp_path / name).mkdir()
    alone = run_traced(exe, work=tmp_path / "alone", options=("--fail-on-leak",))
    assert alone.returncode == 0
    gated = run_traced(exe, work=tmp_path / "gated",
                       options=("--follow-children", "--fail-on-leak"))
    assert gated.returncode == 99, gated.stderr
    assert children_together(gated.stderr) == (333, 2, 0, 0, 0, 0)
    under = run_traced(exe, work=tmp_path / "under",
                       options=("--follow-children", "--fail-on-leak=333"))
    assert under.returncode == 0, under.stderr


def test_the_json_report_of_a_run_has_its_followed_children(build_dir: Path,
                                                             tmp_path: Path) -> None:
    """A CI job that keeps `--format json --report-file` as its artifact and fails on a
    child's leak: the artifact says which child leaked what (it said the program leaked
    nothing, and no more)."""
    exe = compile_program("fork_child.c", build_dir, "-O0")
    artifact = tmp_path / "report.json"
    done = leaktrace("run", "--follow-children", "--fail-on-leak", "--format", "json",
                     "--report-file", str(artifact), "--", str(exe), cwd=tmp_path)
    assert done.returncode == 99, done.stderr
    report = json.loads(artifact.read_text())
    assert report["summary"]["definitely_lost"] == {"bytes": 0, "blocks": 0}
    [child] = report["children"]
    assert child["definitely_lost"] == {"bytes": 333, "blocks": 2}
    assert child["error"] is None and Path(child["capture"]).is_file()
    assert f".{child['pid']}.lt" in child["capture"]
    alone = leaktrace("run", "--format", "json", "--report-file", str(tmp_path / "alone.json"),
                      "--", str(exe), cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert json.loads((tmp_path / "alone.json").read_text())["children"] is None


def test_a_child_that_outlives_the_program_is_waited_for_and_counted(build_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A traced child that ends a moment after the program (multiprocessing's resource
    tracker) was left out of the children's summary and of --fail-on-leak: run exited 0 with
    its 4,000-byte leak. run now waits for it (at most 2 s). A child still running then (a
    daemon) is named, not waited for."""
    exe = compile_program("outliving_child.c", build_dir, "-O0")
    (tmp_path / "ends").mkdir()
    run = run_traced(exe, work=tmp_path / "ends", options=("--follow-children", "--fail-on-leak"))
    assert (run.returncode, run.stdout) == (99, "parent done\n"), run.stderr
    assert children_together(run.stderr)[:2] == (4000, 1)
    (tmp_path / "daemon").mkdir()
    daemon = run_traced(exe, "daemon", work=tmp_path / "daemon",
                        options=("--follow-children", "--fail-on-leak"))
    assert (daemon.returncode, daemon.stdout) == (0, "parent leaves a daemon\n"), daemon.stderr
    line = re.search(r"leaktrace: child (\d+) \(outliving_child\S*\) still runs after the "
                     r"program's end \(waited 2 s\)", daemon.stderr)
    assert line, daemon.stderr
    os.kill(int(line[1]), signal.SIGKILL)


def test_followed_children_summary_leaves_out_what_suppressions_match(
        build_dir: Path, tmp_path: Path) -> None:
    """A child whose thread ends the process: the thread's TLS vector, which the child's own
    report counts as suppressed (glibc's, leaktrace's default list), is neither in the
    children's line nor counted by --fail-on-leak."""
    exe = compile_program("child_thread_exit.c", build_dir, "-O0")
    run = run_traced(exe, work=tmp_path, options=("--follow-children", "--fail-on-leak"))
    assert run.returncode == 0, run.stderr
    assert children_together(run.stderr) == (0, 0, 0, 0, 0, 0)
    [child] = [c for c in tmp_path.glob("*.lt") if c != run.capture]
    from leakharness import json_report

    every = json_report(child)["summary"]  # the default suppressions off
    assert every["possibly_lost"]["blocks"] + every["definitely_lost"]["blocks"] >= 1
    shown = json_report(child, "--show", "all")["summary"]
    assert shown["possibly_lost"] == shown["definitely_lost"] == {"bytes": 0, "blocks": 0}


def test_children_given_an_environment_of_their_own_are_followed(
        build_dir: Path, tmp_path: Path) -> None:
    """A program that clears its environment before it runs children (fork and execl, vfork
    and execve with an empty environment as Python's subprocess does, posix_spawn with an
    environment of its own): with --follow-children all three are traced and counted;
    without, none is."""
    exe = compile_program("cleared_env_children.c", build_dir, "-O0")
    (tmp_path / "followed").mkdir()
    (tmp_path / "alone").mkdir()
    followed = run_traced(exe, work=tmp_path / "followed",
                          options=("--follow-children", "--fail-on-leak"))
    assert followed.returncode == 99, followed.stderr
    assert children_together(followed.stderr) == (66 + 99 + 123, 3, 0, 0, 0, 0)
    alone = run_traced(exe, work=tmp_path / "alone", options=("--fail-on-leak",))
    assert alone.returncode == 0, alone.stderr
    assert list((tmp_path / "alone").glob("*.lt")) == [alone.capture]


def test_followed_programs_see_their_environment_as_natively(build_dir: Path,
                                                           tmp_path: Path) -> None:
    """--follow-children hides leaktrace's settings as a plain run does: from the program and
    from each child, also the shells glibc's system() and popen() start past the exec hooks
    (which still get them, and are traced: sh, env and grep twice each). system() keeps its
    behaviour: SIGINT ignored while it runs, the disposition back afterwards."""
    exe = compile_program("spawns_shells.c", build_dir, "-O0")
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                               if not k.startswith("LEAKTRACE_")})
    assert native.stdout == ("own environment: 0\n0\nsystem: 3\nsurvived SIGINT during system: 4"
                             "\npopen: 0\npclose: 1\nSIGINT afterwards: default\n"), native.stderr
    followed = run_traced(exe, work=tmp_path, options=("--follow-children",))
    assert (followed.returncode, followed.stdout) == (0, native.stdout), followed.stderr
    programs = sorted(c.name.split(".")[0] for c in tmp_path.glob("leaktrace-*.lt")
                      if ".exec-" not in c.name)
    assert programs == ["leaktrace-env"] * 2 + ["leaktrace-grep"] * 2 + ["leaktrace-sh"] * 3, \
        programs


def test_a_shim_under_another_name_is_hidden_from_the_program_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$LEAKTRACE_SHIM may name a build of the shim with another file name (a build tree, a
    copy kept for comparison): the program saw that LD_PRELOAD entry, since the shim hid only
    the entries named libleaktrace_shim.so. It hides the name it was loaded under."""
    renamed = tmp_path / "another_shim.so"
    shutil.copy(find_shim_library(), renamed)
    monkeypatch.setenv("LEAKTRACE_SHIM", str(renamed))
    # leaktrace's own settings are hidden from the program, the one naming the shim included
    native = subprocess.run(["env"], capture_output=True, text=True, timeout=60, check=True,
                            cwd=tmp_path, env={k: v for k, v in os.environ.items()
                                               if not k.startswith("LEAKTRACE_")})
    done = leaktrace("run", "-o", str(tmp_path / "env.lt"), "--", "env", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "LD_PRELOAD" not in done.stdout
    assert sorted(done.stdout.splitlines()) == sorted(native.stdout.splitlines())


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_the_process_that_calls_daemon_has_its_capture(build_dir: Path, tmp_path: Path,
                                                       opt: str) -> None:
    """daemon() ends its caller with the C library's own _exit, past the hooks: the caller
    (the program, or a followed child) wrote no capture, and run said it ended without one.
    Each process now has its own: the caller its 33 lost bytes, the daemon those and its own
    55; the daemon still starts in a new session, in /, on /dev/null."""
    exe = compile_program("daemonizes.c", build_dir, opt)
    saw = "cwd /, session leader 1, on /dev/null 111\n"
    followed = run_traced(exe, str(tmp_path / "followed.txt"), "child", work=tmp_path,
                          options=("--follow-children",))
    assert (followed.returncode, followed.stdout) == (
        0, f"daemon()'s caller exited 0; the daemon saw: {saw}"), followed.stderr
    assert "without a capture" not in followed.stderr, followed.stderr
    assert children_together(followed.stderr) == (33 + 33 + 55, 3, 0, 0, 0, 0)
    for capture, lost in ((c, [r["bytes"] for r in json_report(c)["records"]
                               if r["leak_kind"] == "definitely lost"])
                          for c in tmp_path.glob("leaktrace-daemonizes.*.lt")):
        assert sorted(lost) in ([33], [33, 55]), (capture, lost)

    itself = run_traced(exe, str(tmp_path / "itself.txt"), "self", work=tmp_path)
    assert (itself.returncode, itself.stdout) == (0, ""), itself.stderr
    [record] = [r for r in itself.report["records"] if r["leak_kind"] == "definitely lost"]
    assert allocation_site(record, "daemonizes.c") == (
        "daemonizes.c", marker_line("daemonizes.c", "before_daemon"))
    for _ in range(500):
        if (tmp_path / "itself.txt").exists():
            break
        time.sleep(0.01)
    assert (tmp_path / "itself.txt").read_text() == saw


def test_an_exec_of_a_program_the_shim_cannot_enter_is_named(build_dir: Path,
                                                             tmp_path: Path) -> None:
    """A traced process that execs a static (or setuid) program writes no capture past the
    exec, as the loader does not preload the shim there: run names the program and why (tmux
    runs the setgid utempter from a child), not a SIGKILL or raw system call."""
    static = compile_source(tmp_path, "static_hello.c",
                            "#include <stdio.h>\nint main(void) { puts(\"static\"); return 0; }\n",
                            "-static")
    why = f"{static} is statically linked: the leaktrace shim cannot enter it"
    plain = leaktrace("run", "-o", str(tmp_path / "plain.lt"), "--", "sh", "-c",
                      f"exec {static}", cwd=tmp_path)
    # No report of the last image: never a 0, which would claim a clean run (README's table).
    assert (plain.returncode, plain.stdout) == (2, "static\n"), plain.stderr
    assert f"by the image it exec'd last: {why}" in plain.stderr, plain.stderr
    # bash forks for a command (dash's vfork children are not traced: nothing to say).
    followed = leaktrace("run", "-o", str(tmp_path / "followed.lt"), "--follow-children", "--",
                         "bash", "-c", f"{static}; {static}; exit 4", cwd=tmp_path)
    assert (followed.returncode, followed.stdout) == (4, "static\n" * 2), followed.stderr
    named = [line for line in followed.stderr.splitlines()
             if "not traced past its last exec" in line]
    assert len(named) == 2 and all(line.endswith(why + " (it needs the dynamic loader); rebuild "
                                                 "it dynamically linked") for line in named), \
        followed.stderr
    assert "without a capture" not in followed.stderr, followed.stderr


def test_skip_children_leaves_out_the_programs_it_names(build_dir: Path, tmp_path: Path) -> None:
    """--skip-children (valgrind's --trace-children-skip): a shell runs two programs that each
    lose 66 bytes; the one whose name matches a pattern writes no capture and is not counted,
    the other is. Without --follow-children the option is a usage error."""
    kept = compile_program("cleared_env_children.c", build_dir, "-O0", output="kept_child")
    skipped = compile_program("cleared_env_children.c", build_dir, "-O0", output="skipped_child")
    script = f"{kept} forked; {skipped} forked"
    done = leaktrace("run", "-o", str(tmp_path / "sh.lt"), "--follow-children",
                     "--skip-children", "cc1,skipped_*", "--fail-on-leak", "--",
                     "sh", "-c", script, cwd=tmp_path)
    assert done.returncode == 99, done.stderr
    assert children_together(done.stderr) == (66, 1, 0, 0, 0, 0)
    captured = [c.name.split(".")[0] for c in tmp_path.glob("leaktrace-*.lt")]
    assert captured == ["leaktrace-kept_child"]
    unused = leaktrace("run", "--skip-children", "x", "--", "true", cwd=tmp_path)
    assert unused.returncode == 2 and "give --follow-children too" in unused.stderr


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_children_forked_while_threads_allocate_neither_hang_nor_lose_count(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    exe = compile_program("fork_under_churn.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path, options=("--follow-children",))
    assert (run.returncode, run.stdout) == (0, "done\n" * 8)
    counted = []
    for capture in tmp_path.glob("*.lt"):
        report = run.report if capture == run.capture else json_report(capture)
        for record in records_from(report, "fork_under_churn.c", "child"):
            counted.append((record["blocks"], record["bytes"]))
    # 8 grandchildren, each with its 10,000 blocks: 9,999 lost and the last one in `sink`.
    assert counted == [(10000, 40000)] * 8


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_counts_stay_exact_while_a_large_live_set_is_rehashed_by_span(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """Three threads each hold 200,000 blocks at once: their shards grow past the size where
    blocks are placed by span (shim/blocks.c, home_slot) while they and the others allocate
    and free, and main
    frees a quarter of each thread's blocks from its own thread. 50,000 blocks a thread are
    lost, exactly; no free goes unmatched."""
    exe = compile_program("big_live_set.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert (run.returncode, run.stdout) == (0, "done\n")
    site = records_from(run.report, "big_live_set.c", "block")
    assert [(r["blocks"], r["bytes"]) for r in site] == [(150_000, 150_000 * 48)]
    assert run.report["summary"]["definitely_lost"] == {"bytes": 150_000 * 48, "blocks": 150_000}
    assert run.report["counters"]["unknown_frees"] == 0


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_counts_stay_exact_when_threads_free_each_others_blocks(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """Four threads each allocate batches and hand them to the next thread, which frees them
    while their allocating thread goes on allocating: each thread's shards (owned by it,
    shim/blocks.c) are made shared in the middle of its owner's operations. Each thread
    drops 25 zeroed 40-byte blocks: exactly 100 are definitely lost, and every free matches."""
    exe = compile_program("shared_shards.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert (run.returncode, run.stdout) == (0, "done\n")
    site = records_from(run.report, "shared_shards.c", "block")
    assert (sum(r["blocks"] for r in site), sum(r["bytes"] for r in site)) == (100, 4000)
    assert run.report["summary"]["definitely_lost"] == {"bytes": 4000, "blocks": 100}
    assert run.report["counters"]["unknown_frees"] == 0
    assert run.report["counters"]["dropped_blocks"] == 0


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_counts_stay_exact_while_the_block_table_grows_shrinks_and_rehashes(
        build_dir: Path, tmp_path: Path, opt: str) -> None:
    """Two threads grow a shared pool to 200,000 blocks, churn it, shrink it to a few
    thousand, churn and regrow it, freeing each other's blocks: the shim's table grows, fills
    with removed slots and is rehashed in place meanwhile (shim/blocks.c). The program prints
    the blocks it leaks at the end (about 16,000 of various sizes): exactly those are
    definitely lost, and every free matched a recorded block."""
    exe = compile_program("table_churn.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    blocks, nbytes = (int(word.rstrip(",")) for word in run.stdout.split()[1:4:2])
    assert blocks > 10_000, run.stdout
    site = records_from(run.report, "table_churn.c", "churn")
    assert (sum(r["blocks"] for r in site), sum(r["bytes"] for r in site)) == (blocks, nbytes)
    assert run.report["summary"]["definitely_lost"] == {"bytes": nbytes, "blocks": blocks}
    assert run.report["counters"]["unknown_frees"] == 0
    assert run.report["counters"]["dropped_blocks"] == 0


def test_frees_of_blocks_never_seen_are_counted_exactly_from_threads(
        build_dir: Path, tmp_path: Path) -> None:
    """Three threads each free 300 blocks they got from glibc's own __libc_malloc, which the
    shim does not see (as after an attach): each thread counts in a stripe of its own, and the
    capture's unknown_frees is their exact sum; nothing is reported as lost."""
    exe = compile_program("unknown_frees.c", build_dir, "-O2")
    run = run_traced(exe, "300", work=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.report["counters"]["unknown_frees"] == 900, run.report["counters"]
    assert program_records(run.report, "unknown_frees.c") == []
    # It calls __libc_malloc: the shim cannot tell its blocks' frees from invalid ones, and
    # does not check (tests/test_invalid_frees.py).
    assert run.report["invalid_frees"] is None


def test_program_without_leaks_gives_empty_report(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("no_leak.c", build_dir, "-O2")
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0
    assert run.stdout == "no leaks here\n"  # the program's own output is untouched
    assert program_records(run.report, "no_leak.c") == []
    # Every free is of a block the shim saw allocated: its own lookups allocate nothing the
    # program's exit (glibc's freeres) would free behind its back.
    assert run.report["counters"]["unknown_frees"] == 0


@pytest.mark.parametrize(
    ("how", "exit_code"),
    [
        ("return", 7),
        ("exit", 5),
        ("_exit", 6),
        ("quick_exit", 8),
        ("thread", 4),
        ("sigterm", -signal.SIGTERM),  # leaktrace run dies of the program's signal too
        ("sigint", -signal.SIGINT),
    ],
)
def test_capture_written_on_every_exit_path(
    build_dir: Path, tmp_path: Path, how: str, exit_code: int
) -> None:
    exe = compile_program("exit_paths.c", build_dir, "-O2")
    run = run_traced(exe, how, work=tmp_path)
    assert run.returncode == exit_code
    [record] = records_from(run.report, "exit_paths.c", "exit_paths")
    assert (record["blocks"], record["bytes"]) == (1, 77)


def test_quick_exit_writes_the_capture_after_its_handlers(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("quick_exit_handlers.c", build_dir, "-O2")
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 3
    line = marker_line("quick_exit_handlers.c", "in_handler")
    mine = [r for r in run.report["records"]
            if allocation_site(r, "quick_exit_handlers.c") is not None]
    # The handler's leak, and not the block it freed.
    assert [(r["blocks"], r["bytes"], r["leak_kind"], allocation_site(r, "quick_exit_handlers.c"))
            for r in mine] == [(1, 33, "definitely lost", ("quick_exit_handlers.c", line))]


KILLED_CHILD = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
void *volatile sink;
int main(void)
{
    pid_t child = fork();
    if (child == 0) {
        sink = malloc(50);
        raise(SIGKILL);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child %d killed\n", (int)child);
    return 0;
}
"""


def test_a_followed_child_killed_by_sigkill_is_named(tmp_path: Path) -> None:
    """A traced child that ended without a capture was left out of the children's summary
    without a word."""
    from native_programs import compile_source

    exe = compile_source(tmp_path, "killed_child.c", KILLED_CHILD, "-O0")
    done = leaktrace("run", "--follow-children", "-o", str(tmp_path / "k.lt"), "--", str(exe),
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[1])
    assert (f"leaktrace: warning: child {child} ended without a capture (killed by SIGKILL"
            in done.stderr), done.stderr


MAPPING_KINDS = {"mmap", "mremap", "brk"}


def _valgrind_in_use_at_exit(exe: Path, *args: str) -> tuple[int, int]:
    """valgrind's "in use at exit: B bytes in N blocks" for the same binary."""
    done = subprocess.run(["valgrind", "--leak-check=no", str(exe), *args],
                          capture_output=True, text=True, timeout=300)
    # A forked child prints its own summary first: the launched process's is the last.
    matches = re.findall(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", done.stderr)
    assert matches, done.stderr
    return int(matches[-1][0].replace(",", "")), int(matches[-1][1].replace(",", ""))


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
@pytest.mark.parametrize(
    ("source", "opt", "link"),
    [("three_deep.c", "-O2", ""), ("no_leak.c", "-O2", ""), ("cpp_string.cpp", "-O2", ""),
     ("all_apis.c", "-O0", ""), ("fork_child.c", "-O0", ""), ("thread_leak.c", "-O2", ""),
     # libstdc++ linked in: its exception pool (72,704 bytes) is freed at exit only where
     # the program exports __gnu_cxx::__freeres (-rdynamic), by valgrind and by leaktrace.
     ("cpp_string.cpp", "-O0", "-static-libstdc++ -rdynamic"),
     ("cpp_string.cpp", "-O0", "-static-libstdc++")],
)
def test_live_heap_at_exit_matches_valgrind(build_dir: Path, tmp_path: Path, source: str,
                                            opt: str, link: str) -> None:
    """The heap bytes and blocks still live at exit are valgrind's "in use at exit" (mappings
    and the program break are not heap, and valgrind does not count them either)."""
    # valgrind 3.19 aborts the program at pvalloc: leave that call out for both.
    exe = compile_program(source, build_dir, opt, ["-DNO_PVALLOC", *link.split()],
                          output=f"vg-{source}{opt}{link.replace(' ', '')}")
    run = run_traced(exe, work=tmp_path)
    heap = [kind for kind in run.report["summary"]["by_kind"] if kind not in MAPPING_KINDS]
    ours = (sum(run.report["summary"]["by_kind"][k]["bytes"] for k in heap),
            sum(run.report["summary"]["by_kind"][k]["blocks"] for k in heap))
    assert ours == _valgrind_in_use_at_exit(exe)


@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not installed")
def test_rust_leak_is_demangled(build_dir: Path, tmp_path: Path) -> None:
    exe = build_dir / "rust_leak"
    subprocess.run(["rustc", "-g", "-O", "-o", str(exe), str(Path(__file__).parent / "programs"
                    / "rust_leak.rs")], check=True, capture_output=True)
    run = run_traced(exe, work=tmp_path)
    assert run.stdout == "config-7 100\n"
    site = ("rust_leak.rs", marker_line("rust_leak.rs", "rust_box"))
    [record] = [r for r in run.report["records"]
                if r["leak_kind"] == "definitely lost" and allocation_site(r, site[0]) == site]
    # The Config (a String and a Vec: 6 words) owns the Vec's 800 bytes and the string's
    # buffer (format! reserves 14 bytes for "config-7").
    assert (record["blocks"], record["direct_bytes"], record["indirect_bytes"]) == (1, 48, 814)
    functions = [f["function"] or "" for f in record["frames"]]
    assert "rust_leak::store::make" in functions
    assert not any("$LT$" in f or "::h" in f[-19:] for f in functions)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_aligned_new_is_reported_at_the_size_asked(tmp_path: Path, opt: str) -> None:
    """libstdc++'s aligned operator new rounds the size up to the alignment before calling
    aligned_alloc: the block is the size the program asked for (as valgrind reports it)."""
    exe = compile_program("aligned_new_leaks.cpp", tmp_path, opt, extra=["-std=c++17"])
    run = run_traced(exe, work=tmp_path)
    sizes = {marker: [(r["blocks"], r["bytes"]) for r in
                      records_from(run.report, "aligned_new_leaks.cpp", marker)]
             for marker in ("explicit", "nothrow", "slots", "rounded", "after_failure")}
    assert sizes == {"explicit": [(1, 100)], "nothrow": [(1, 70)], "slots": [(1, 192)],
                     "rounded": [(1, 128)], "after_failure": [(1, 64)]}


def test_executable_with_code_in_a_later_segment(build_dir: Path, tmp_path: Path) -> None:
    """A non-PIE executable whose .text is not in its first executable segment (node's
    layout): its frames are named, as valgrind names them (they had no module before: the
    module was only the few bytes of .init/.plt)."""
    exe = compile_program("split_text.c", build_dir, "-O0",
                          ["-no-pie", "-Wl,--section-start=.text=0x800000"])
    run = run_traced(exe, work=tmp_path)
    assert (run.returncode, run.stdout) == (0, "1\n")
    [record] = records_from(run.report, "split_text.c", "split")
    assert (record["blocks"], record["bytes"], record["kind"]) == (1, 41, "malloc")
    names = [frame.get("function") for frame in record["frames"]]
    assert names[:2] == ["leak_here", "main"], record["frames"]


def test_inherited_output_and_follow_children_are_dropped_as_help_says(build_dir: Path,
                                                                        tmp_path: Path) -> None:
    """`leaktrace --help` marks LEAKTRACE_OUTPUT, LEAKTRACE_FOLLOW_CHILDREN,
    LEAKTRACE_SKIP_CHILDREN and LEAKTRACE_MTRACE_LOG as set by `run` from its options only: an
    inherited one (from an outer run, or a shim preloaded by hand) names another process's
    capture, so run drops it. The help listed them beside the others as if run read them."""
    exe = compile_program("three_deep.c", build_dir, "-O0")
    stray = tmp_path / "stray.lt"
    done = subprocess.run(
        [*LEAKTRACE, "run", "--", "sh", "-c", f"{exe}; true"], capture_output=True, text=True,
        cwd=tmp_path, timeout=120,
        env={**os.environ, "LEAKTRACE_OUTPUT": str(stray), "LEAKTRACE_FOLLOW_CHILDREN": "1"})
    assert done.returncode == 0, done.stderr
    assert not stray.exists()
    # Only sh's own capture: the child was not followed.
    assert [p.name.split(".")[0] for p in tmp_path.glob("*.lt")] == ["leaktrace-sh"]
    help_text = leaktrace("--help").stdout
    for name in ("OUTPUT=FILE", "FOLLOW_CHILDREN=1", "SKIP_CHILDREN=PATTERNS", "MTRACE_LOG=FILE"):
        assert f" *LEAKTRACE_{name} " in help_text, name
    assert "marked * from its options only, an inherited one is dropped" in " ".join(
        help_text.split())


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_blocks_given_back_by_the_sized_frees_are_not_live(build_dir: Path, tmp_path: Path,
                                                           opt: str) -> None:
    """C23's free_sized and free_aligned_sized (glibc 2.43 on; GLib's g_free_sized calls them
    there) give a block back as free() does: none of the 20 blocks freed so stays live, and
    the two left at exit are reported as usual. Where the C library lacks them the program's
    weak references find the shim's (the previous shim had none: "no sized frees here")."""
    exe = compile_program("sized_frees.c", build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not records_from(run.report, "sized_frees.c", "sized")
    assert not records_from(run.report, "sized_frees.c", "aligned")
    left = sorted((r["leak_kind"], r["blocks"], r["bytes"]) for r in run.report["records"]
                  if allocation_site(r, "sized_frees.c") is not None)
    assert left == [("definitely lost", 1, 44), ("still reachable", 1, 33)]
