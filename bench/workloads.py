"""The benchmark's workloads: each a program that prints "expected leak: N blocks, M bytes" and
leaks only from leak_site(); every other allocation site is named site_*."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
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

    def build(self, out: Path) -> tuple[Path, str]:
        """(executable, the build command as shown in the report)."""
        out.mkdir(parents=True, exist_ok=True)
        exe = out / Path(self.source).stem
        subprocess.run([self.compiler, *self.flags, "-o", str(exe), str(BENCH_DIR / self.source)],
                       check=True, capture_output=True, text=True)
        shown = [self.compiler, *self.flags, "-o", f"bench/out/{exe.name}", f"bench/{self.source}"]
        return exe, shlex.join(shown)


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
            "(`.eh_frame`).")),
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
            "without frame pointers.")),
}
