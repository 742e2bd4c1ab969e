"""The benchmark's workloads. The built ones (C, C++) print "expected leak: N blocks, M bytes"
and leak only from leak_site(); every other allocation site is named site_*. The real programs
(sqlite3, python3) are the system's own binaries doing allocation-heavy work, with no
deliberate leak: they measure what tracing costs a program nobody wrote for the benchmark."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from paths import BENCH_DIR


@dataclass(frozen=True)
class Workload:
    key: str  # --workload
    title: str
    source: str  # in bench/
    compiler: str
    flags: tuple[str, ...]
    default_threads: int
    default_iterations: int
    description: str
    unit: str = "Iterations per thread"  # the table's column for `iterations`
    env: dict[str, str] = field(default_factory=dict)  # for every run, native included
    deliberate_leak: bool = True
    target: float | None = None  # issue 10's goal for leaktrace, x native

    def argv(self, exe: Path, iterations: int, threads: int, launcher: bool = True) -> list[str]:
        """The command of one run. `launcher`: through bench/peak.c where the workload needs
        it for its peak RSS (real programs; a tool that is itself the traced process, as
        valgrind is, or that launches it, says False)."""
        return [str(exe), "-n", str(iterations), "-t", str(threads)]

    def missing(self) -> str | None:
        return None

    def build(self, out: Path) -> tuple[Path, str]:
        """(executable, the build command as shown in the report)."""
        out.mkdir(parents=True, exist_ok=True)
        exe = out / Path(self.source).stem
        subprocess.run([self.compiler, *self.flags, "-o", str(exe), str(BENCH_DIR / self.source)],
                       check=True, capture_output=True, text=True)
        shown = [self.compiler, *self.flags, "-o", f"bench/out/{exe.name}", f"bench/{self.source}"]
        return exe, shlex.join(shown)


@dataclass(frozen=True)
class RealProgram(Workload):
    """A program of the system run through bench/peak.c (built statically here, so the
    tracer's LD_PRELOAD reaches only the program), which prints its peak RSS."""

    program: tuple[str, ...] = ()

    def build(self, out: Path) -> tuple[Path, str]:
        out.mkdir(parents=True, exist_ok=True)
        exe = out / "peak"
        flags = ["-O2", "-static"]
        subprocess.run(["gcc", *flags, "-o", str(exe), str(BENCH_DIR / "peak.c")],
                       check=True, capture_output=True, text=True)
        return exe, shlex.join(["gcc", *flags, "-o", "bench/out/peak", "bench/peak.c"])

    def missing(self) -> str | None:
        return None if shutil.which(self.program[0]) else f"{self.program[0]} not installed"

    def program_argv(self, workdir: Path, iterations: int) -> list[str]:
        return [*self.program, str(iterations)]

    def argv(self, exe: Path, iterations: int, threads: int, launcher: bool = True) -> list[str]:
        command = self.program_argv(exe.parent, iterations)
        return [str(exe), *command] if launcher else command


@dataclass(frozen=True)
class Sqlite(RealProgram):
    """sqlite3 inserting ITERATIONS rows into an in-memory database in one transaction."""

    def program_argv(self, workdir: Path, iterations: int) -> list[str]:
        script = workdir / f"sqlite-insert-{iterations}.sql"
        if not script.exists():
            rows = "".join(
                f"INSERT INTO t(name, value) VALUES('row {i} of the benchmark', {i}.5);\n"
                for i in range(iterations)
            )
            script.write_text(
                "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value REAL);\nBEGIN;\n"
                f"{rows}COMMIT;\nSELECT count(*), sum(value) FROM t;\n"
            )
        return [*self.program, ":memory:", f".read {script}"]


# Builds a dict of ITERATIONS str values and drops it.
PYTHON_DICT = "import sys\nd = {i: str(i) for i in range(int(sys.argv[1]))}\ndel d\n"

WORKLOADS = {
    "c": Workload(
        key="c", title="C", source="workload.c", compiler="gcc",
        flags=("-O2", "-fomit-frame-pointer", "-g", "-pthread"),
        default_threads=4, default_iterations=2_000_000,
        description=(
            "`bench/workload.c`: each thread makes ITERATIONS allocations from 15 sites chosen "
            "at random (xorshift64*, fixed seed), each site reached through its own chain of "
            "noinline functions 3 to 12 frames deep: malloc (4 sites), calloc (2), realloc "
            "chains growing and shrinking, reallocarray, posix_memalign, aligned_alloc, "
            "memalign, valloc and 64 KiB anonymous mmap/munmap. Sizes run from 8 B to 64 KiB, "
            "85% of them at most 256 B. Each new block replaces the oldest of a ring of 4096 "
            "live blocks per thread, which is freed (free or munmap), so memory stays bounded. "
            "The one deliberate leak: every 1000th iteration of each thread, `leak_site` "
            "allocates 100 bytes and drops the pointer, so threads x ITERATIONS/1000 blocks of "
            "100 B leak; the workload prints that total and the rings are emptied at the end. "
            "It is built without frame pointers, so tracers must unwind with DWARF CFI "
            "(`.eh_frame`)."), target=1.5),
    "cpp": Workload(
        key="cpp", title="C++", source="workload_cpp.cpp", compiler="g++",
        flags=("-std=c++17", "-O2", "-fomit-frame-pointer", "-g", "-pthread"),
        default_threads=2, default_iterations=300_000,
        description=(
            "`bench/workload_cpp.cpp`: each thread makes ITERATIONS steps; a step picks one of "
            "12 sites (weighted, fixed seed) reached through `Chain<N>::step` template "
            "instances 3 to 12 frames deep, and builds an object through operator new and the "
            "standard containers (std::string, std::vector grown by push_back, std::map, "
            "std::unordered_map, std::list, std::shared_ptr, plain new of nodes and arrays, a "
            "temporary concatenation), kept in a ring of 4096 objects per thread that "
            "destroys the one it replaces (about 7 heap calls per step). Every 1000th step a "
            "12-frame chain reaches `leak_site`, which leaks 100 bytes from new[]. Built "
            "without frame pointers."), target=2.0),
    "sqlite3": Sqlite(
        key="sqlite3", title="sqlite3 (a real program)", source="", compiler="", flags=(),
        default_threads=1, default_iterations=20_000, unit="Rows inserted",
        deliberate_leak=False, program=("sqlite3",),
        description=(
            "`sqlite3 :memory: '.read SCRIPT'`: Debian's sqlite3 shell creates a table and "
            "inserts ITERATIONS rows (an integer key, a 25-character text, a real) in one "
            "transaction into an in-memory database, then sums a column. The script is "
            "generated once per row count (bench/workloads.py). No deliberate leak: the leak "
            "column is empty; the notes say what each tool reported.")),
    "python3": RealProgram(
        key="python3", title="python3 (a real program)", source="", compiler="", flags=(),
        default_threads=1, default_iterations=1_000_000, unit="Dict entries",
        env={"PYTHONMALLOC": "malloc"}, deliberate_leak=False,
        program=("/usr/bin/python3", "-c", PYTHON_DICT),
        description=(
            "`PYTHONMALLOC=malloc /usr/bin/python3 -c CODE ITERATIONS`: Debian's Python builds "
            "a dict of ITERATIONS int keys and str values, then drops it. PYTHONMALLOC=malloc "
            "makes every object its own malloc call (Python's small-object allocator would "
            "otherwise hand out most of them from its own arenas, unseen by any tracer); the "
            "variable is set for every row, native included. No deliberate leak: the leak "
            "column is empty; the notes say what each tool reported.")),
}
