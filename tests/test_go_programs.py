"""Go programs that call C (cgo; a Go program without cgo is static, and nothing can be
preloaded into it). Go's runtime ends the process with a raw exit_group system call in
runtime.exit, past every exit handler; the shim redirects runtime.exit to write the final
capture first (shim/go_exit.c), which holds every leak the C code made, from goroutines on
several threads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from leakharness import allocation_site, json_report, leaktrace

GO_SOURCE = """package main

// #include <stdlib.h>
// #include <string.h>
// static void *volatile sink;
// static __attribute__((noinline)) void leak(int n) {
//     sink = malloc(n); /* @leak:cgo */
//     memset(sink, 1, n);
//     sink = 0;
// }
import "C"
import (
	"fmt"
	"os"
	"sync"
)

func main() {
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
# How it is built: plain, stripped of its symbol table (found by its code), position-independent.
BUILDS = {"plain": [], "stripped": ["-ldflags=-s"], "pie": ["-buildmode=pie"]}


@pytest.fixture(scope="module")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (apt-get install golang-go)")
    work = tmp_path_factory.mktemp("go")
    (work / "main.go").write_text(GO_SOURCE)
    (work / "go.mod").write_text("module cgoleak\n\ngo 1.19\n")
    env = {**os.environ, "GOCACHE": str(work / "cache"), "GOPATH": str(work / "gopath"),
           "GOFLAGS": "-mod=mod", "CGO_ENABLED": "1"}
    built = {}
    for name, flags in BUILDS.items():
        subprocess.run([go, "build", *flags, "-o", name, "."], cwd=work, env=env, check=True,
                       capture_output=True, timeout=600)
        built[name] = work / name
    return built


@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.parametrize("build", sorted(BUILDS))
def test_a_cgo_program_leaves_a_capture_with_its_leaks(go_programs: dict[str, Path],
                                                      tmp_path: Path, build: str,
                                                      ending: str) -> None:
    exe = go_programs[build]
    native = subprocess.run([str(exe), ending], capture_output=True, text=True, timeout=60)
    assert (native.returncode, native.stdout) == (ENDINGS[ending], "cgo ran\n")
    capture = tmp_path / "go.lt"
    done = leaktrace("run", "-o", str(capture), "--", str(exe), ending, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (native.returncode, native.stdout), done.stderr
    assert "fatal error" not in done.stderr
    assert capture.exists(), done.stderr
    report = json_report(capture)
    # Go's runtime allocates from C only with calloc (its threads' vectors): every block
    # from malloc is one of the leaks, which a stripped build cannot name.
    leaks = [r for r in report["records"] if r["kind"] == "malloc"]
    assert (sum(r["bytes"] for r in leaks), sum(r["blocks"] for r in leaks)) == LEAKED
    if build != "stripped":
        assert {allocation_site(r, "main.go") for r in leaks} == {("main.go", LEAK_LINE)}
    # Each leak is found lost, or kept "still reachable" by a stale word on the stack of a
    # thread that made a C call (docs/user-guide.md, Go programs); never anything else.
    assert {r["leak_kind"] for r in leaks} <= {"definitely lost", "still reachable"}
