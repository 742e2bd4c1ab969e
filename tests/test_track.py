"""leaktrace.track(): the shim loaded into a Python process by itself (no ptrace), recording
only what a block allocates. Each scenario runs in a fresh interpreter with the test
extension module (tests/programs/track_ext.c, built with setuptools) importable.

Leak sizes are multiples of 16: glibc's top-chunk pointer (a root in libc's data) points
8 bytes before the end of a block of 16k+8 bytes carved from the top, which would make the
newest such block only "possibly lost"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trackharness import build_extension, marker_line, records_from, run_json, run_python

SOURCE = "track_ext.c"


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_extension(tmp_path_factory.mktemp("track_ext"))


def kinds(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return report["summary"]


def test_extension_leak_is_definitely_lost_with_file_and_line(ext_dir: Path) -> None:
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext
        with leaktrace.track() as t:
            ext.leak(48)
            ext.leak(48)
            ext.keep(64)
            ext.no_leak(1000)
        print(json.dumps({"leaked": t.leaked_bytes, "live": t.live_bytes,
                          "report": json.loads(t.report().render("json"))}))
    """, ext_dir)
    leaks = kinds(report["report"])
    assert leaks["indirectly_lost"] == {"bytes": 0, "blocks": 0}
    assert report["live"] == 96 + 64
    lost = records_from(report["report"], SOURCE, marker_line("lost"))
    assert sum(r["bytes"] for r in lost) == 96 and sum(r["blocks"] for r in lost) == 2
    assert {r["frames"][0]["function"] for r in lost} == {"make_lost"}
    kept = records_from(report["report"], SOURCE, marker_line("kept"))
    assert [(r["leak_kind"], r["bytes"]) for r in kept] == [("still reachable", 64)]
    # Usually both lost blocks are definitely lost. In a Python process one of them can be
    # taken for possibly lost (or reachable) by a stale copy of its address: seen here, the
    # unused bits of a str object's `state` word in a reused pymalloc slot held the upper
    # bytes of an old pointer, which made an interior pointer into the block (valgrind skips
    # such words, whose bits were never written; a scan without definedness cannot). See
    # docs/tracking.md, "Limits". At most one block of the two is hidden that way here.
    definite = [r for r in lost if r["leak_kind"] == "definitely lost"]
    assert definite and sum(r["bytes"] for r in definite) >= 48, lost
    assert report["leaked"] == sum(r["bytes"] for r in lost if r["leak_kind"] != "still reachable")
    if sum(r["bytes"] for r in definite) == 96:
        assert leaks["definitely_lost"] == {"bytes": 96, "blocks": 2}
        assert leaks["possibly_lost"] == {"bytes": 0, "blocks": 0}
        assert leaks["still_reachable"] == {"bytes": 64, "blocks": 1}


def test_nothing_live_when_the_block_frees_everything(ext_dir: Path) -> None:
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext
        with leaktrace.track() as t:
            for _ in range(100):
                ext.no_leak(4096)
        print(json.dumps({"leaked": t.leaked_bytes, "records": len(t.report().records)}))
    """, ext_dir)
    assert report == {"leaked": 0, "records": 0}


def test_ctypes_strdup_leak(ext_dir: Path) -> None:
    report = run_json("""
        import ctypes, json, leaktrace
        libc = ctypes.CDLL("libc.so.6")
        libc.strdup.restype = ctypes.c_void_p
        libc.strdup.argtypes = [ctypes.c_char_p]
        with leaktrace.track() as t:
            libc.strdup(b"twenty-nine bytes of text...")  # the address is dropped at once
        lost = [r for r in t.report().records if r.leak_kind != "still reachable"]
        page = t.report().render("html")
        print(json.dumps({"lost": [(r.leak_kind, r.bytes, r.blocks, r.frames[0].function)
                                   for r in lost],
                          "html": page.startswith("<!DOCTYPE html>") and "strdup" in page}))
    """, ext_dir)
    # Definitely lost, or possibly lost when a stale copy of its address's upper bytes sits in
    # a live str object's state word (test_extension_leak_is_definitely_lost_with_file_and_line;
    # seen in one checkout path of three).
    [(kind, size, blocks, function)] = report["lost"]
    assert (size, blocks, function) == (29, 1, "strdup")
    assert kind in {"definitely lost", "possibly lost"}
    assert report["html"]


def test_only_the_block_is_recorded_and_leaving_detaches(ext_dir: Path) -> None:
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext
        ext.leak(32)                 # before: not in any block
        with leaktrace.track() as t:
            ext.leak(16)
        ext.leak(64)                 # after: the GOT is back, nothing records
        with leaktrace.track() as again:
            ext.leak(80)
        lost = lambda tr: [(r.bytes, r.blocks) for r in tr.report().records
                           if r.leak_kind == "definitely lost"]
        print(json.dumps({"first": lost(t), "second": lost(again)}))
    """, ext_dir)
    assert report == {"first": [[16, 1]], "second": [[80, 1]]}


def test_nested_blocks(ext_dir: Path) -> None:
    """The three leaks share one backtrace (the same C call): one loss record."""
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext
        with leaktrace.track() as outer:
            ext.leak(16)
            with leaktrace.track() as inner:
                ext.leak(32)
            ext.leak(48)
        lost = lambda tr: [(r.bytes, r.blocks) for r in tr.report().records
                           if r.leak_kind == "definitely lost"]
        print(json.dumps({"outer": lost(outer), "inner": lost(inner)}))
    """, ext_dir)
    assert report == {"outer": [[96, 3]], "inner": [[32, 1]]}


def test_repeat_reports_what_grows_every_time(ext_dir: Path) -> None:
    """init_then_leak loses 100 bytes on its first call only, then 96 bytes per call: the
    warm-up call is left out, and so is the one-time loss.

    Which kind each of the three blocks gets is not exact in a Python process: a stale copy
    of a block's address in the tail of a pymalloc slot (an object that once lived at the
    address the allocator now gives the leak) is a root, so one of them can come out still
    reachable (docs/tracking.md, "Limits"; seen in CI in one run of a few dozen). What repeat
    selects is exact: the blocks, their bytes and their allocation site."""
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext

        @leaktrace.track(repeat=4)
        def work():
            ext.init_then_leak(96)
            return "done"

        result = work()
        r = work.last_track.report()
        print(json.dumps({"result": result,
                          "records": [(r.leak_kind, r.bytes, r.blocks, r.frames[0].function,
                                       r.frames[0].line) for r in r.records]}))
    """, ext_dir)
    assert report["result"] == "done"
    records = report["records"]
    assert sum(r[1] for r in records) == 288
    assert sum(r[2] for r in records) == 3
    assert {(r[3], r[4]) for r in records} == {("make_lost", marker_line("lost"))}
    assert {r[0] for r in records} <= {"definitely lost", "possibly lost", "still reachable"}
    definite = [r for r in records if r[0] == "definitely lost"]
    assert definite and definite[0][1] >= 192  # at most one block hidden by a stale copy


def test_repeat_keeps_a_leak_whose_interpreter_path_changes(ext_dir: Path) -> None:
    """Python 3.11's specializing interpreter calls a warm call site through another path of
    its eval loop: the same leak of the extension then has another backtrace from one call
    to the next, and repeat, which kept only backtraces live after every call, lost it (0
    bytes after 4 or 5 calls of a warm-up, 3,000 after any other count). Every warm-up count
    through the point where the call site specializes gives the 3 calls' leaks."""
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext

        def wrapper(n):
            return ext.leak(n)

        found = []
        for warm in range(9):
            for _ in range(warm):
                wrapper(1)
            t = leaktrace.track(repeat=4)
            t.run(wrapper, 1000)
            found.append(sum(r.bytes for r in t.report().records))
        print(json.dumps(found))
    """, ext_dir)
    assert report == [3000] * 9


def test_a_block_left_by_an_exception_is_captured(ext_dir: Path) -> None:
    """The leaks of an error path: the block is captured when an exception leaves it (its
    results said "the tracked block has not ended yet"), max_bytes does not replace the
    exception with a LeakError; one left by KeyboardInterrupt is not held up by a scan, and
    its results say why there are none. The same through run()."""
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext
        from leaktrace.errors import LeaktraceError
        results = []
        try:
            with leaktrace.track(max_bytes=0) as t:
                ext.leak(444)
                raise ValueError("bad input")
        except ValueError as e:
            results.append([str(e), t.leaked_bytes])
        try:
            with leaktrace.track() as t:
                ext.leak(555)
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            try:
                t.leaked_bytes
            except LeaktraceError as e:
                results.append(str(e))

        def failing():
            ext.leak(333)
            raise RuntimeError("failed")

        t = leaktrace.track(repeat=3)
        try:
            t.run(failing)
        except RuntimeError:
            results.append(t.leaked_bytes)

        def generator():
            with leaktrace.track() as t:
                ext.leak(222)
                yield t

        g = generator()
        t = next(g)
        g.close()  # GeneratorExit leaves the block: control flow, captured
        results.append(t.leaked_bytes)
        print(json.dumps(results))
    """, ext_dir)
    assert report == [["bad input", 444],
                      "leaktrace: the tracked block ended with KeyboardInterrupt: nothing was "
                      "captured", 333, 222]


def test_threads_current_leaves_out_other_threads(ext_dir: Path) -> None:
    """A thread started inside the block is covered with threads="all" only. (Compared by
    the extension's live blocks, whatever their leak kind.)"""
    report = run_json("""
        import json, threading, leaktrace, lt_track_ext as ext
        def results(threads):
            with leaktrace.track(threads=threads) as t:
                ext.leak(208)
                worker = threading.Thread(target=ext.leak, args=(336,))
                worker.start()
                worker.join()
            return sorted(b.size for r in t.report().records
                          if r.frames and r.frames[0].function == "make_lost"
                          for b in r.addresses)
        print(json.dumps({"all": results("all"), "current": results("current")}))
    """, ext_dir)
    assert report == {"all": [208, 336], "current": [208]}


PYTHON_MALLOC = {"PYTHONMALLOC": "malloc"}  # every Python object its own malloc call


@pytest.mark.parametrize("threads", ["all", "current"])
def test_the_trackers_own_objects_are_not_the_blocks(ext_dir: Path, threads: str) -> None:
    """With PYTHONMALLOC=malloc each Python object is a malloc'd block, the tracker's own too
    (its generation numbers, sets, ranges): none of them may be reported, or every tracked
    test of a clean function would fail with kinds="all"."""
    report = run_json(f"""
        import json, leaktrace, lt_track_ext as ext

        @leaktrace.track(repeat=4, threads={threads!r})
        def clean():
            ext.no_leak(64)
            return [str(i) for i in range(100)]

        clean()
        with leaktrace.track(threads={threads!r}) as t:
            ext.no_leak(64)
        print(json.dumps({{"repeat": clean.last_track.live_bytes, "with": t.live_bytes}}))
    """, ext_dir, PYTHON_MALLOC)
    assert report == {"repeat": 0, "with": 0}


def test_reference_and_pymem_leaks_with_python_malloc(ext_dir: Path) -> None:
    """A lost reference to a new object, and a lost PyMem_Malloc block: with
    PYTHONMALLOC=malloc both are malloc'd blocks, found with their lines. The lost object is
    still linked from the interpreter's own lists (kinds="all" counts it), the PyMem block
    is not linked anywhere."""
    report = run_json("""
        import json, leaktrace, lt_track_ext as ext

        @leaktrace.track(repeat=4, kinds="all")
        def work():
            ext.leak_object(1000)
            ext.leak_pymem(96)

        work()
        r = work.last_track.report()
        def site(rec):  # the first frame in the extension: where it allocated
            return next(f.line for f in rec.frames if f.file and f.file.endswith("track_ext.c"))
        print(json.dumps(sorted([b.size, site(rec)] for rec in r.records for b in rec.addresses)))
    """, ext_dir, PYTHON_MALLOC)
    object_size = 1000 + 33  # PyBytesObject's header and the terminating NUL
    assert report == sorted([[96, marker_line("pymem")]] * 3
                            + [[object_size, marker_line("object")]] * 3)


def test_max_bytes_raises_leak_error_with_the_report(ext_dir: Path) -> None:
    result = run_python("""
        import leaktrace, lt_track_ext as ext
        try:
            with leaktrace.track(max_bytes=0):
                ext.leak(64)
        except leaktrace.LeakError as e:
            print(e)
    """, ext_dir)
    assert result.returncode == 0, result.stderr
    assert "64 bytes definite,possible leaked inside the tracked block (limit 0)" in result.stdout
    assert f"track_ext.c:{marker_line('lost')}" in result.stdout


def test_under_leaktrace_run_the_preloaded_shim_is_used(ext_dir: Path, tmp_path: Path) -> None:
    """`leaktrace run -- python ...`: track() uses the preloaded shim as it is."""
    script = tmp_path / "script.py"
    script.write_text(
        "import json, leaktrace, lt_track_ext as ext\n"
        "with leaktrace.track() as t:\n"
        "    ext.leak(48)\n"
        "print(json.dumps([(r.leak_kind, r.bytes) for r in t.report().records\n"
        "                  if r.leak_kind == 'definitely lost']))\n")
    # One OpenBLAS thread (numpy's) is enough: with more, the preloaded shim's exit scan
    # currently waits forever (a shim issue outside track(), reported to the lead).
    capture = str(tmp_path / "run.lt")
    result = run_python(f"""
        import subprocess, sys
        r = subprocess.run([sys.executable, "-m", "leaktrace", "run", "-o", {capture!r},
                            "--", sys.executable, {str(script)!r}], capture_output=True, text=True)
        print(r.returncode)
        print(r.stdout)
        sys.stderr.write(r.stderr)
    """, ext_dir, env={"OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "0", result.stderr
    assert lines[1] == '[["definitely lost", 48]]'
    assert (tmp_path / "run.lt").is_file()  # the run's own capture is written as usual


def test_a_leak_in_a_joined_thread_is_definitely_lost(ext_dir: Path, tmp_path: Path) -> None:
    """glibc keeps a joined thread's stack for reuse, the thread's stale local pointer on it.
    The scan knew such a stack by its thread control block's DTV, a block the shim must have
    recorded; a Python process that made threads before the track() block reuses a stack
    whose DTV it never saw, and the leak was still reachable. Now the block's stack and
    pointer guards tell it too. Twice: the second thread takes the first one's cached stack."""
    from native_programs import compile_source

    library = compile_source(tmp_path, "joined.c", JOINED_THREAD_LEAK, "-O0", "-shared",
                             "-fPIC", "-pthread")
    report = run_json(f"""
        import ctypes, json, threading, leaktrace
        threading.Thread(target=print, args=("",)).start()  # a stack in glibc's cache first
        lib = ctypes.CDLL({str(library)!r})
        results = []
        for _ in range(2):
            with leaktrace.track() as t:
                lib.leak_in_thread()
            results.append([(r.leak_kind, r.bytes) for r in t.report().records])
        print(json.dumps(results))
    """, ext_dir)
    assert report == [[["definitely lost", 912]], [["definitely lost", 912]]]


def test_allocations_through_a_data_pointer_to_malloc(ext_dir: Path, tmp_path: Path) -> None:
    """A library that calls malloc through a pointer its data was relocated with (libxml2's
    `xmlMalloc = malloc`, glib's vtable) never goes through its GOT: track() saw none of its
    allocations. Now that word points at the hook while tracking; a word the program changed to
    its own allocator is left alone, and put back as it was when the block ends."""
    from native_programs import compile_source

    library = compile_source(tmp_path, "table.c", ALLOCATOR_TABLE, "-O1", "-shared", "-fPIC")
    report = run_json(f"""
        import ctypes, json, leaktrace
        lib = ctypes.CDLL({str(library)!r})
        lib.through_table.argtypes = [ctypes.c_size_t]
        with leaktrace.track() as t:
            lib.through_table(300)
        through_malloc = [(r.leak_kind, r.bytes) for r in t.report().records]
        lib.use_counting_allocator()
        with leaktrace.track() as t:
            lib.through_table(200)
        counted = lib.counted_calls()
        through_own = [(r.leak_kind, r.bytes) for r in t.report().records]
        lib.through_table(100)  # after the block: the library's own allocator again
        print(json.dumps([through_malloc, through_own, counted, lib.counted_calls()]))
    """, ext_dir)
    # The blocks' kinds are not this test's: glibc hands the interpreter's freed addresses out
    # again at once, and a live object's padding may still hold a stale copy of one (a str's
    # state word keeps the upper bytes of a pointer): possibly lost, now and then reachable.
    [[_, bytes_300]], [[_, bytes_200]], counted, counted_after = report
    assert (bytes_300, bytes_200, counted, counted_after) == (300, 200, 1, 2)


ALLOCATOR_TABLE = """
#include <stdlib.h>
void *(*table_alloc)(size_t) = malloc; /* an R_X86_64_64 relocation against malloc */
static int calls;
static void *counting(size_t n) { calls++; return malloc(n); }
void use_counting_allocator(void) { table_alloc = counting; }
int counted_calls(void) { return calls; }
void through_table(size_t n) { void *volatile p = table_alloc(n); (void)p; }
"""


JOINED_THREAD_LEAK = """
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
void *volatile sink;
__attribute__((noinline)) static void *body(void *unused)
{
    (void)unused;
    char *p = malloc(912);
    memset(p, 4, 912);
    sink = p; /* a copy stays in this thread's frame */
    sink = NULL;
    return NULL;
}
void leak_in_thread(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, body, NULL);
    pthread_join(thread, NULL);
}
"""


def test_leaks_at_addresses_freed_python_objects_held_are_definitely_lost(
        ext_dir: Path, tmp_path: Path) -> None:
    """A freed Python object stays in its pymalloc pool with its old contents: a bytearray's
    buffer address, which glibc hands to the next block of that size. Scanned as roots,
    those freed objects kept most leaks of a few KiB still reachable (2,000 to 100,000 bytes:
    4 of 4 missed), so the pytest plugin passed leaking tests. Only a pool's blocks in use
    are roots now."""
    from native_programs import compile_source

    library = compile_source(tmp_path, "leak.c", SIZED_LEAK, "-O0", "-shared", "-fPIC")
    report = run_json(f"""
        import ctypes, json, leaktrace
        lib = ctypes.CDLL({str(library)!r})
        lib.leak.argtypes = [ctypes.c_size_t]
        found = []
        for size in (2000, 5008, 10000, 100000):
            for _ in range(3):
                stale = bytearray(size)  # its buffer's address stays in the freed object
                del stale
                with leaktrace.track() as t:
                    lib.leak(size)
                found.append((size, t.leaked_bytes))
        print(json.dumps(found))
    """, ext_dir)
    # A live object that takes the freed one's slot may leave the old buffer address in its
    # unwritten tail, which is a root like any word of a live block (valgrind would say the
    # same): seen once in a loaded full run. Before, most of the twelve were missed.
    found = [leaked == size for size, leaked in report]
    assert sum(found) >= 10, report


SIZED_LEAK = """
#include <stdlib.h>
#include <string.h>
void *volatile sink;
__attribute__((noinline)) void leak(size_t n)
{
    char *p = malloc(n);
    memset(p, 1, n);
    sink = p;
    sink = NULL;
}
"""


ARENA_AND_CACHE = r"""
#include <pthread.h>
#include <stdlib.h>

struct node { struct node *next; char pad[40]; };
static struct node **holder;                 /* the worker's, in its own arena */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int step;                             /* 1: fill the holder; 2: done; 3: end */

static void wait_for(int wanted)
{
    pthread_mutex_lock(&lock);
    while (step != wanted) pthread_cond_wait(&changed, &lock);
    pthread_mutex_unlock(&lock);
}

static void go_to(int next)
{
    pthread_mutex_lock(&lock);
    step = next;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* The only copy of the block's address is left in a block freed since, in a thread cache. */
__attribute__((noinline)) void lose_through_a_freed_block(void)
{
    void *volatile *scratch = malloc(200);
    scratch[5] = malloc(96);
    free((void *)scratch);
}

/* The thread then waits: its live frames would keep stale copies of the address. */
__attribute__((noinline)) static void scrub_stack(void)
{
    volatile char dead[4096];
    for (unsigned i = 0; i < sizeof dead; i++) dead[i] = 0;
}

static void *worker(void *arg)
{
    (void)arg;
    holder = malloc(16 * sizeof *holder);    /* before the track() block: unknown to it */
    for (int i = 0; i < 16; i++) holder[i] = NULL;
    go_to(0);
    wait_for(1);
    for (int i = 0; i < 16; i++) holder[i] = malloc(sizeof(struct node));
    lose_through_a_freed_block();
    scrub_stack();
    go_to(2);
    wait_for(3);
    return NULL;
}

static pthread_t thread;
void start_worker(void) { step = -1; pthread_create(&thread, NULL, worker, NULL); wait_for(0); }
void fill_in_worker(void) { go_to(1); wait_for(2); }
void end_worker(void) { go_to(3); pthread_join(thread, NULL); }
"""


def test_attached_blocks_in_thread_arenas_and_thread_caches(ext_dir: Path,
                                                            tmp_path: Path) -> None:
    """Attached (track() here, `leaktrace attach` alike), the shim does not know the blocks
    allocated before it came; they are roots. The main heap's were, a thread arena's were not:
    16 nodes only a worker thread's older block points to were definitely lost. And a freed
    block glibc keeps in a thread's cache still looks in use in the heap: the stale address
    it holds made a leak still reachable, in the main heap and in an arena."""
    from native_programs import compile_source

    library = compile_source(tmp_path, "arena.c", ARENA_AND_CACHE, "-O1", "-shared", "-fPIC",
                             "-pthread")
    report = run_json(f"""
        import ctypes, json, leaktrace
        lib = ctypes.CDLL({str(library)!r})
        lib.start_worker()
        with leaktrace.track() as t:
            lib.fill_in_worker()
            lib.lose_through_a_freed_block()
        records = sorted((r.leak_kind, r.bytes, r.blocks) for r in t.report().records)
        lib.end_worker()
        print(json.dumps(records))
    """, ext_dir)
    # Lost, the two leaks: definitely, or possibly when the interpreter happens to hold a
    # stale pointer into the middle of an address it used before (never a start pointer).
    *leaks, nodes = report
    assert nodes == ["still reachable", 768, 16]
    assert [(bytes_, blocks) for _, bytes_, blocks in leaks] == [(96, 1), (96, 1)]
    assert {kind for kind, _, _ in leaks} <= {"definitely lost", "possibly lost"}
