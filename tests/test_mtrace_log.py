"""`leaktrace run --mtrace-log FILE` (docs/mtrace-log.md): the shim writes glibc's MALLOC_TRACE
format with each allocation's backtrace. glibc's own `mtrace` script must print the same
"Memory not freed" rows as for a log glibc itself wrote of the same program, and
`leaktrace mtrace` must tell call paths apart by their full backtraces. Real programs, the
real shim, glibc's real script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from leakharness import assert_one_line_error, leaktrace
from native_programs import compile_source, marker_line

GLIBC_MTRACE = shutil.which("mtrace")
needs_script = pytest.mark.skipif(not GLIBC_MTRACE,
                                  reason="glibc's mtrace script is not installed (libc-devtools)")

PROGRAM = r"""
#include <mcheck.h>
#include <stdlib.h>
#include <string.h>
void * volatile sink[8];
__attribute__((noinline)) void *alloc_from(size_t n) {
  return malloc(n); /* ALLOC_FROM */
}
int main(void) {
  mtrace();
  sink[0] = alloc_from(10); /* PATH_ONE */
  sink[1] = alloc_from(30); /* PATH_TWO */
  sink[2] = calloc(4, 25); /* CALLOC */
  char *r = malloc(16);
  r = realloc(r, 4000); /* REALLOC */
  sink[3] = r;
  sink[4] = strdup("hello");
  free(malloc(77));
  void *gone = realloc(NULL, 5);
  sink[5] = realloc(gone, 0);
  return 0;
}
"""

THREADS = r"""
#include <pthread.h>
#include <stdlib.h>
void * volatile sink[4];
static void *work(void *arg) {
  long i = (long)arg;
  for (int n = 0; n < 3000; n++) {
    void *p = malloc(16 + n % 200);
    p = realloc(p, 300 + n % 50);
    free(p);
  }
  sink[i] = malloc(1000 + i); /* THREAD_LEAK */
  return NULL;
}
int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, work, (void *)i);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_source(tmp_path_factory.mktemp("mtrace_log"), "prog.c", PROGRAM)


@pytest.fixture(scope="module")
def shim_log(program: Path) -> Path:
    log = program.parent / "shim.log"
    done = leaktrace("run", "--start", "on-mtrace", "--mtrace-log", log.name, "--", "./prog",
                     cwd=program.parent)
    assert done.returncode == 0, done.stderr
    assert f"mtrace log written to {log}" in done.stderr
    return log


def _rows(script_output: str) -> Counter[tuple[int, str]]:
    """The script's "Memory not freed" rows as (size, caller), without the addresses, which
    differ from run to run."""
    rows = re.findall(r"^0x[0-9a-f]+ +(0x[0-9a-f]+)  at (.*)$", script_output, re.MULTILINE)
    return Counter((int(size, 16), caller) for size, caller in rows)


@needs_script
def test_glibc_script_prints_the_rows_of_glibcs_own_log(program: Path, shim_log: Path) -> None:
    glibc_log = program.parent / "glibc.log"
    env = dict(os.environ, MALLOC_TRACE=str(glibc_log), LD_PRELOAD="libc_malloc_debug.so.0")
    subprocess.run(["./prog"], cwd=program.parent, env=env, check=True)
    # glibc 2.34+ keeps mtrace() in libc_malloc_debug.so (part of libc6): without its log
    # there is nothing to compare with, a failure rather than a pass.
    assert glibc_log.exists(), "glibc wrote no MALLOC_TRACE log (libc_malloc_debug.so.0?)"
    theirs = subprocess.run([GLIBC_MTRACE or "", "./prog", glibc_log.name], cwd=program.parent,
                            capture_output=True, text=True, check=False)
    ours = subprocess.run([GLIBC_MTRACE or "", "./prog", shim_log.name], cwd=program.parent,
                          capture_output=True, text=True, check=False)
    assert ours.returncode == theirs.returncode == 1  # memory not freed
    assert _rows(ours.stdout) == _rows(theirs.stdout)
    assert sorted(size for size, _ in _rows(ours.stdout).elements()) == [6, 10, 30, 100, 4000]
    source = str(program.with_suffix(".c"))
    assert sum(1 for _, caller in _rows(ours.stdout).elements() if caller.startswith(source)) == 4


def test_backtrace_lines_follow_their_allocation(shim_log: Path, program: Path) -> None:
    lines = shim_log.read_text().splitlines()
    assert lines[0] == "= Start"
    allocations = [i for i, line in enumerate(lines) if re.match(r"@ \S+ [+>] ", line)]
    assert len(allocations) >= 7
    for i in allocations:
        frames = []
        for line in lines[i + 1:]:
            if not line.startswith("# "):
                break
            frames.append(line)
        assert frames, lines[i]
        _address, where = frames[0].split()[1:]
        module, offset = where.rsplit("+", 1)
        caller = re.match(r"@ (.*):\[(0x[0-9a-f]+)\]", lines[i])
        assert caller is not None
        if caller[1] == "./prog":  # frame 0 is CALLER: the same place, in the same file
            assert (module, int(offset, 16)) == (str(program), int(caller[2], 16))


def test_leaktrace_mtrace_groups_by_full_backtrace(program: Path, shim_log: Path) -> None:
    done = leaktrace("mtrace", "--format", "json", "./prog", shim_log.name, cwd=program.parent)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    source = str(program.with_suffix(".c"))
    paths = sorted((r["bytes"], [(f["function"], f["line"]) for f in r["frames"][:2]])
                   for r in report["records"]
                   if r["frames"] and r["frames"][0]["function"] == "alloc_from")
    alloc_line = marker_line(PROGRAM, "ALLOC_FROM")
    assert paths == [(10, [("alloc_from", alloc_line), ("main", marker_line(PROGRAM, "PATH_ONE"))]),
                     (30, [("alloc_from", alloc_line), ("main", marker_line(PROGRAM, "PATH_TWO"))])]
    assert all(f["file"] == source for r in report["records"] for f in r["frames"][:1]
               if f["function"] in ("alloc_from", "main"))
    assert report["summary"]["live"] == {"blocks": 5, "bytes": 10 + 30 + 100 + 4000 + 6}
    # The glibc-style table still lists one row per block, by caller.
    table = leaktrace("mtrace", "./prog", shim_log.name, cwd=program.parent).stdout
    callers = {size: caller for (size, caller) in _rows(table)}
    assert callers[10] == callers[30] and callers[10].startswith(f"{source}:")


@needs_script
def test_threads_never_split_an_event(tmp_path: Path) -> None:
    """Four threads allocating, reallocating and freeing at once: every `#` line stays with
    its allocation, no address is live twice, and exactly the four leaks remain."""
    exe = compile_source(tmp_path, "threads.c", THREADS, "-pthread", "-O1")
    done = leaktrace("run", "--mtrace-log", "t.log", "--", str(exe), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "t.log").read_text()
    previous = ""
    for line in log.splitlines():
        if line.startswith("# "):
            assert re.match(r"(@ \S+ [+>] |# )", previous), previous
        previous = line
    script = subprocess.run([GLIBC_MTRACE or "", str(exe), "t.log"], cwd=tmp_path,
                            capture_output=True, text=True, check=False).stdout
    assert "duplicate" not in script
    source = tmp_path / "threads.c"
    leak_line = marker_line(THREADS, "THREAD_LEAK")
    assert _rows(script) == Counter({(1000 + i, f"{source}:{leak_line}"): 1 for i in range(4)})


def test_existing_log_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "old.log").write_text("keep me\n")
    done = leaktrace("run", "--mtrace-log", "old.log", "--", "/bin/true", cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done, "already exists")
    assert (tmp_path / "old.log").read_text() == "keep me\n"


def test_sampling_is_refused(tmp_path: Path) -> None:
    """Sampling records a few allocations: the log would hold frees of blocks it never
    allocated, which glibc's script reports as errors. run refuses the pair up front."""
    done = leaktrace("run", "--sample", "4096", "--mtrace-log", "s.log", "--", "/bin/true",
                     cwd=tmp_path)
    assert done.returncode == 2
    assert_one_line_error(done, "--mtrace-log logs every allocation, --sample only some")
    assert not (tmp_path / "s.log").exists()


def test_no_log_without_the_option(tmp_path: Path, program: Path) -> None:
    """An inherited LEAKTRACE_MTRACE_LOG is not this run's: run drops it."""
    stray = tmp_path / "stray.log"
    env = dict(os.environ, LEAKTRACE_MTRACE_LOG=str(stray))
    done = subprocess.run([*leaktrace_argv(), "run", "--", str(program)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not stray.exists()


def leaktrace_argv() -> list[str]:
    from leakharness import LEAKTRACE

    return list(LEAKTRACE)
