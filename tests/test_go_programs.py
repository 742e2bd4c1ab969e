"""Go programs that call C (cgo; a Go program without cgo is static, and nothing can be
preloaded into it). Go's runtime ends the process with a raw exit_group system call in
runtime.exit, past every exit handler; the shim redirects runtime.exit to write the final
capture first (shim/go_exit.c), which holds every leak the C code made, from goroutines on
several threads, each definitely lost as valgrind says: the scan skips the dead part of each
Go thread's own stack, where those C calls ran."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from attach_harness import AttachRun, attach_env
from leakharness import EVERY_RECORD, LEAKTRACE, allocation_site, json_report, leaktrace

# The C side of the Go programs below: leak(n) leaks n bytes from one line.
CGO_LEAK = """// #include <stdlib.h>
// #include <string.h>
// static void *volatile sink;
// static __attribute__((noinline)) void leak(int n) {
//     sink = malloc(n); /* @leak:cgo */
//     memset(sink, 1, n);
//     sink = 0;
// }
import "C"
"""
# Eight goroutines, on several threads, each leak a block from C, then the caller does: nine.
LEAK_NINE = """
func leakNine() {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				C.free(C.malloc(64))
			}
			C.leak(C.int(100 + g))
		}(g)
	}
	wg.Wait()
	C.leak(50)
}
"""
GO_SOURCE = "package main\n\n" + CGO_LEAK + """import (
	"fmt"
	"os"
	"sync"
)
""" + LEAK_NINE + """
func main() {
	leakNine()
	fmt.Println("cgo ran")
	switch os.Args[1] {
	case "exit":
		os.Exit(3)
	case "panic":
		panic("the end")
	}
}
"""
LEAK_LINE = next(n for n, text in enumerate(GO_SOURCE.splitlines(), 1) if "@leak:cgo" in text)
LEAKED = (50 + sum(100 + g for g in range(8)), 9)
# How the program ends: (argument, exit status).
ENDINGS = {"return": 0, "exit": 3, "panic": 2}
# How it is built: plain, stripped of its symbol table and debug information (runtime.exit is
# found by its code, the bounds of Go's code in its pclntab), position-independent.
BUILDS = {"plain": [], "stripped": ["-ldflags=-s"], "pie": ["-buildmode=pie"],
          "pie-stripped": ["-buildmode=pie", "-ldflags=-s"]}


# Go objects that hold C blocks (the usual wrapper), while goroutines run at exit: their
# stacks lie in Go's heap, beside those objects.
HELD_SOURCE = """package main

// #include <stdlib.h>
import "C"
import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"
)

type wrapper struct {
	pad [40]byte
	p   unsafe.Pointer
}

var kept []*wrapper
var stop int64

func busy(depth int) int64 {
	if depth > 0 {
		var local [64]byte
		local[depth%64] = 1
		return busy(depth-1) + int64(local[3])
	}
	for atomic.LoadInt64(&stop) == 0 {
	}
	return 0
}

func main() {
	for i := 0; i < 4; i++ {
		go busy(50)
	}
	for i := 0; i < 20000; i++ {
		kept = append(kept, &wrapper{p: C.malloc(32)})
		if i%100 == 0 {
			go busy(10)
		}
	}
	fmt.Println(len(kept))
	os.Exit(0)
}
"""


def _go_build(work: Path, source: str, builds: dict[str, list[str]]) -> dict[str, Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (apt-get install golang-go)")
    (work / "main.go").write_text(source)
    (work / "go.mod").write_text("module cgoleak\n\ngo 1.19\n")
    env = {**os.environ, "GOCACHE": str(work.parent / "gocache"),
           "GOPATH": str(work.parent / "gopath"), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "1"}
    built = {}
    for name, flags in builds.items():
        subprocess.run([go, "build", *flags, "-o", name, "."], cwd=work, env=env, check=True,
                       capture_output=True, timeout=600)
        built[name] = work / name
    return built


def program_mallocs(report: dict) -> list[dict]:
    """The malloc'd records of the program's own C code: not cgo's runtime (x_cgo_thread_start's
    24-byte start record of a thread still starting when Go exits, which the new thread frees
    itself: live at exit in some runs, natively too)."""
    return [r for r in report["records"] if r["kind"] == "malloc"
            and not any((f["function"] or "").startswith("x_cgo_") for f in r["frames"][:2])]


@pytest.fixture(scope="module")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _go_build(tmp_path_factory.mktemp("go"), GO_SOURCE, BUILDS)


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_a_cgo_program_leaves_a_capture_with_its_leaks(go_programs: dict[str, Path],
                                                      tmp_path: Path, build: str,
                                                      ending: str) -> None:
    exe = go_programs[build]
    native = subprocess.run([str(exe), ending], capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == (ENDINGS[ending], "cgo ran\n")
    # The dead frames of ended goroutines' stacks are found through runtime.allgs, which a
    # stripped executable has no name for: there they are read, and a stale word keeps a leak
    # "still reachable" in about one run of twenty (docs/user-guide.md, Go programs), so one
    # of three runs must find all nine lost. Everything else must hold in every run.
    attempts = 3 if "stripped" in build else 1
    for attempt in range(attempts):
        capture = tmp_path / f"go{attempt}.lt"
        done = leaktrace("run", "-o", str(capture), "--", str(exe), ending, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr
        assert "fatal error" not in done.stderr
        assert capture.exists(), done.stderr
        report = json_report(capture)
        # Go's runtime allocates from C only with calloc (its threads' vectors): every block
        # from malloc is one of the leaks, which a stripped build cannot name.
        leaks = program_mallocs(report)
        assert (sum(r["bytes"] for r in leaks), sum(r["blocks"] for r in leaks)) == LEAKED
        assert {r["leak_kind"] for r in leaks} <= {"definitely lost", "still reachable"}
        if "stripped" not in build:  # no debug information, no file:line
            assert {allocation_site(r, "main.go") for r in leaks} == {("main.go", LEAK_LINE)}
        lost = report["summary"]["definitely_lost"]
        if (lost["bytes"], lost["blocks"]) == LEAKED:
            return
    raise AssertionError(f"definitely lost in {attempts} run(s): {lost}, not {LEAKED}")


# Counts leaktrace's settings in its own environment (os.Environ(), which Go reads from the
# initial stack, not from the C library's environ) and in a child's, started by Go's own
# fork and exec (raw system calls, past every hook).
ENVIRONMENT_SOURCE = """package main

// #include <stdlib.h>
import "C"
import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	seen := 0
	for _, entry := range os.Environ() {
		if strings.HasPrefix(entry, "LEAKTRACE_") || strings.HasPrefix(entry, "LD_PRELOAD=") {
			seen++
		}
	}
	C.free(C.malloc(16))
	child, err := exec.Command("sh", "-c", "env | grep -c -E '^(LEAKTRACE_|LD_PRELOAD=)'").Output()
	fmt.Printf("own: %d, child: %s (%v)\\n", seen, strings.TrimSpace(string(child)), err)
}
"""


def test_a_go_program_sees_its_environment_as_natively(tmp_path: Path) -> None:
    """Go reads its environment from the array on the initial stack, where the shim's
    settings stayed when it hid them from `environ`: os.Environ() held five of them and every
    child Go started got them. Under --follow-children they stay there, so that those
    children (Go execs past the hooks) are followed."""
    work = tmp_path / "env"
    work.mkdir()
    exe = _go_build(work, ENVIRONMENT_SOURCE, {"env": []})["env"]
    native = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("LEAKTRACE_")})
    assert native.stdout == "own: 0, child: 0 (exit status 1)\n", native.stderr
    done = leaktrace("run", "-o", str(tmp_path / "plain.lt"), "--", str(exe), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    followed_dir = tmp_path / "followed"
    followed_dir.mkdir()
    followed = leaktrace("run", "--follow-children", "--", str(exe), cwd=followed_dir)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.endswith(", child: 0 (exit status 1)\n"), followed.stdout
    assert "3 child process(es) traced" in followed.stderr, followed.stderr


def test_c_blocks_held_by_go_objects_are_reachable(tmp_path: Path) -> None:
    """The goroutines' stack pointers lie in Go's heap: the scan must not take that mapping
    for a thread stack and skip what lies below them (it found thousands of the blocks
    "definitely lost" in most runs)."""
    work = tmp_path / "held"
    work.mkdir()
    exe = _go_build(work, HELD_SOURCE, {"held": []})["held"]
    for run in range(3):
        capture = tmp_path / f"held{run}.lt"
        done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, "20000\n"), done.stderr
        summary = json_report(capture)["summary"]
        assert summary["definitely_lost"] == {"bytes": 0, "blocks": 0}
        assert summary["still_reachable"]["blocks"] >= 20000


# A Go program whose goroutines each leak a block from C through a Go local (its size the Go
# expression `size`, of g): the even ones keep it in a Go slice, the odd ones drop it; `work`
# runs before, `spawn` starts each one (adding to wg), `setup` before them all. It prints how
# many it kept.
DROP_OR_KEEP_SOURCE = string.Template("""package main

// #include <stdlib.h>
// #include <string.h>
// static void *leak(size_t n) { void *p = malloc(n); memset(p, 1, n); return p; }
import "C"
import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

func main() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := []unsafe.Pointer{}
	$setup
	for g := 0; g < $goroutines; g++ {
		$spawn
		go func(g int) {
			defer wg.Done()
			$work
			p := C.leak(C.size_t($size))
			if g%2 == 0 {
				mu.Lock()
				held = append(held, p)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	runtime.GC()
	fmt.Println(len(held))
	runtime.KeepAlive(held)
}
""")


def drop_or_keep_source(
    goroutines: int, spawn: str, size: str, setup: str = "", work: str = ""
) -> str:
    return DROP_OR_KEEP_SOURCE.substitute(
        goroutines=goroutines, spawn=spawn, size=size, setup=setup, work=work
    )


def _assert_dropped_lost_and_held_reachable(
    tmp_path: Path, name: str, source: str, odd: tuple[int, int], even: tuple[int, int]
) -> None:
    """Builds `source` (plain and PIE), runs each 3 times under leaktrace, and checks that the
    C blocks of 100 bytes or more the odd goroutines dropped are definitely lost and those the
    even ones kept in a Go slice still reachable: (bytes, blocks) each. The program prints how
    many it kept."""
    work = tmp_path / name
    work.mkdir()
    built = _go_build(work, source, {"plain": [], "pie": ["-buildmode=pie"]})
    for build, exe in built.items():
        for run in range(3):
            capture = tmp_path / f"{name}-{build}{run}.lt"
            done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
            assert (done.returncode, done.stdout) == (0, f"{even[1]}\n"), done.stderr
            kinds: dict[str, list[int]] = {}
            report = json_report(capture, *EVERY_RECORD, "--show-addresses")
            for record in program_mallocs(report):
                for block in record["addresses"]:
                    if block["size"] >= 100:
                        kinds.setdefault(record["leak_kind"], []).append(block["size"])
            found = {kind: (sum(sizes), len(sizes)) for kind, sizes in kinds.items()}
            assert found == {"definitely lost": odd, "still reachable": even}, (build, run)


# 40 goroutines each call C, then leak a block from C through a Go local: the even ones keep
# it in a Go slice, the odd ones drop it. A goroutine that ended leaves its stack, which Go
# keeps for the next one, with the dropped pointers still in the dead frames of its calls.
# (Fewer than 64: past 64 ended goroutines on one P, Go moves 32 to its global list, whose
# stacks the next GC frees; those in a span Go then gives back to its heap the scan cannot tell
# from live memory, docs/user-guide.md.)
DROPPED_SOURCE = drop_or_keep_source(
    goroutines=40,
    spawn="wg.Add(1)",
    work="""for i := 0; i < 200; i++ {
				C.free(C.leak(C.size_t(16 + i%64)))
			}""",
    size="100 + g",
)


def test_c_blocks_dropped_by_goroutines_that_ended_are_lost(tmp_path: Path) -> None:
    """The 20 blocks the odd goroutines dropped are definitely lost and the 20 kept in a Go
    slice still reachable, in every run, as valgrind says. The dead frames of the ended
    goroutines' stacks (below each g's saved stack pointer, found through runtime.allgs) are
    not roots: read whole, their stale copies kept most of the 20 still reachable."""
    odd = (sum(100 + g for g in range(1, 40, 2)), 20)
    even = (sum(100 + g for g in range(0, 40, 2)), 20)
    _assert_dropped_lost_and_held_reachable(tmp_path, "dropped", DROPPED_SOURCE, odd, even)


# 200 goroutines that end, each beside one that waits to the end: past 64 ended goroutines on
# one P, Go moves 32 to its global list, and the GC frees their stacks to its pool of free
# stacks, where the waiting goroutines' stacks keep their spans (a span with no stack in use
# would go back to Go's heap).
POOLED_SOURCE = drop_or_keep_source(
    goroutines=200,
    setup="stop := make(chan struct{})",
    spawn="""wg.Add(2)
		go func() { wg.Done(); <-stop }()""",
    size="100 + g%50",
)


def test_c_blocks_dropped_on_stacks_go_freed_are_lost(tmp_path: Path) -> None:
    """The 100 blocks dropped by goroutines whose stacks the GC freed to Go's pool of free
    stacks are definitely lost and the 100 kept in a Go slice still reachable, as valgrind
    says (100 and 100): a free stack in runtime.stackpool is not a root. Read as live memory,
    its stale copies kept 66 to 83 of the 100 still reachable."""
    odd = (sum(100 + g % 50 for g in range(1, 200, 2)), 100)
    even = (sum(100 + g % 50 for g in range(0, 200, 2)), 100)
    _assert_dropped_lost_and_held_reachable(tmp_path, "pooled", POOLED_SOURCE, odd, even)


CALLBACK_SOURCE = """package main

/*
#include <stdlib.h>
#include <string.h>
extern void goCallback(void);
static __attribute__((noinline)) void with_block(void) {
    char *volatile held = malloc(333);
    memset(held, 7, 333);
    goCallback();
    free(held);
}
static void run(void) { with_block(); }
*/
import "C"
import (
	"fmt"
	"os"
)

//export goCallback
func goCallback() {
	fmt.Println("in callback")
	os.Exit(5)
}

func main() {
	C.run()
}
"""


def test_a_block_held_by_a_c_frame_under_a_go_callback_is_reachable(tmp_path: Path) -> None:
    """C calls back into Go, which exits: the C frame that holds the block's only pointer
    lies on the thread's own stack above where Go's scheduler now starts (the callback moved
    g0.sched.sp below the C frames), so it is live, and the block reachable, as valgrind says."""
    work = tmp_path / "callback"
    work.mkdir()
    exe = _go_build(work, CALLBACK_SOURCE, {"callback": []})["callback"]
    for run in range(3):
        capture = tmp_path / f"callback{run}.lt"
        done = leaktrace("run", "-o", str(capture), "--", str(exe), cwd=tmp_path)
        assert (done.returncode, done.stdout) == (5, "in callback\n"), done.stderr
        held = program_mallocs(json_report(capture))
        assert [(r["leak_kind"], r["bytes"], r["blocks"]) for r in held] == [
            ("still reachable", 333, 1)]


# A Go program that runs until its input ends, for `leaktrace attach`: each "leak" line leaks
# nine blocks from C, eight of them from goroutines on several threads.
SERVED_SOURCE = "package main\n\n" + CGO_LEAK + """import (
	"bufio"
	"fmt"
	"os"
	"sync"
)
""" + LEAK_NINE + """
func main() {
	lines := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for lines.Scan() {
		if lines.Text() == "leak" {
			leakNine()
		}
		fmt.Println("ok")
	}
}
"""


class Served:
    """The served program, started untraced; one answer line per request."""

    def __init__(self, exe: Path, cwd: Path) -> None:
        self.process = subprocess.Popen([str(exe)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=cwd)
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "ready\n"

    def request(self, text: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "ok\n"

    def end(self) -> int:
        """Ends its input: main returns, and Go's runtime.exit ends the process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(60)


@pytest.fixture(scope="module")
def served_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _go_build(tmp_path_factory.mktemp("served"), SERVED_SOURCE, {"served": []})["served"]


ATTACH_ONLY_ON_X86_64 = pytest.mark.skipif(os.uname().machine != "x86_64",
                                           reason="leaktrace attach is x86-64 only")


@ATTACH_ONLY_ON_X86_64
def test_scan_of_an_attached_cgo_program_finds_its_leaks_lost(served_program: Path,
                                                             tmp_path: Path) -> None:
    """Attached (the shim's runtime.exit redirect is for launches only), the shim still knows
    the program is Go's (shim/go_exit.c, lt_go_detect), so a scan reads each Go thread's own
    stack only from where Go's scheduler left it: the nine blocks the window's C calls leaked
    are definitely lost, as valgrind says of them. The program goes on serving afterwards."""
    line = next(n for n, text in enumerate(SERVED_SOURCE.splitlines(), 1) if "@leak:cgo" in text)
    env = attach_env(tmp_path / "ctl")
    served = Served(served_program, tmp_path)
    try:
        run = AttachRun(served.process.pid, "--format", "json", "--no-default-suppressions",
                        env=env, cwd=tmp_path)
        run.wait_attached()
        kinds: dict[str, tuple[int, int]] = {}
        for attempt in range(3):  # a stale word in Go's heap, as above: one of three runs
            served.request("leak")
            scan = subprocess.run([*LEAKTRACE, "scan", "--format", "json", "--show", "all",
                                   "--no-default-suppressions", str(served.process.pid)],
                                  capture_output=True, text=True, env=env, cwd=tmp_path,
                                  timeout=120)
            assert scan.returncode == 0, scan.stderr
            report = json.loads(scan.stdout)
            kinds = {}
            for record in report["records"]:
                if allocation_site(record, "main.go") == ("main.go", line):
                    blocks, nbytes = kinds.get(record["leak_kind"], (0, 0))
                    kinds[record["leak_kind"]] = (blocks + record["blocks"],
                                                  nbytes + record["bytes"])
            leaked = (LEAKED[1] * (attempt + 1), LEAKED[0] * (attempt + 1))  # (blocks, bytes)
            assert sum(b for b, _ in kinds.values()) == leaked[0], kinds
            if kinds == {"definitely lost": leaked}:
                break
        assert kinds == {"definitely lost": leaked}, kinds
        run.interrupt()
        assert run.finish() == 0, "".join(run.stderr)
        served.request("work")  # still serving after detach
    finally:
        assert served.end() == 0


@ATTACH_ONLY_ON_X86_64
def test_attach_says_why_a_go_program_that_ended_left_no_capture(served_program: Path,
                                                                 tmp_path: Path) -> None:
    """An attached Go program that ends by itself skips every exit handler (runtime.exit is
    redirected only under `leaktrace run`): attach says so in one line, exit status 2, and
    what to do instead; the program ends as it would have."""
    served = Served(served_program, tmp_path)
    run = AttachRun(served.process.pid, "--format", "json", env=attach_env(tmp_path / "ctl"),
                    cwd=tmp_path)
    run.wait_attached()
    served.request("leak")
    assert served.end() == 0
    assert run.finish() == 2
    errors = [line for line in run.stderr if line.startswith("leaktrace: error:")]
    assert len(errors) == 1, run.stderr
    assert "a Go program ends with a raw exit system call" in errors[0]
    assert f"report --pid {served.process.pid}" in errors[0]
    assert "Traceback" not in "".join(run.stderr)
    assert run.stdout == ""
