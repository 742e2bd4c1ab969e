"""Time the candidate symbolizer back ends on a few thousand unique frames.

Generates a C++ program with many small functions (namespaces, templates, inlining at -O2),
compiles it with -g, picks addresses inside the functions, and times:
  * binutils addr2line, one batch process fed every address on stdin
  * llvm-symbolizer, one batch process (if installed)
  * pyelftools DWARF line-program + DIE lookup (if installed)
Also times addr2line on libc (separate debug info, when libc6-dbg is installed).
Run: python3 bench/symbolizer_bench.py [N_FUNCTIONS]   (numbers go to docs/symbolizer.md)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate_program(n: int) -> str:
    parts = ["#include <vector>\n#include <string>\n#include <cstdlib>\n"]
    for i in range(n):
        parts.append(
            f"namespace ns{i % 17} {{ template <typename T> struct Box{i} {{\n"
            f"  static inline T twice(T v) {{ return v * 2 + {i}; }}\n"
            f"  __attribute__((noinline)) static T run(T v) {{\n"
            f"    std::vector<T> *p = new std::vector<T>(3, twice(v)); T r = (*p)[1];\n"
            f"    delete p; return r; }}\n}}; }}\n"
        )
    parts.append("int main(int argc, char **) { long s = 0;\n")
    for i in range(n):
        parts.append(f"  s += ns{i % 17}::Box{i}<long>::run(argc);\n")
    parts.append("  return (int)(s & 1); }\n")
    return "".join(parts)


def function_addresses(binary: Path) -> list[int]:
    out = subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True,
                         text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW" and "Box" in fields[2]:
            addrs.append(int(fields[0], 16) + 8)
    return addrs


def time_addr2line(binary: Path, addrs: list[int]) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run(["addr2line", "-f", "-i", "-C", "-a", "-e", str(binary)],
                         input="".join(f"{a:#x}\n" for a in addrs), capture_output=True,
                         text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    resolved = sum(1 for line in out.splitlines() if line.startswith("ns") or "::" in line)
    return elapsed, resolved


def time_llvm(binary: Path, addrs: list[int]) -> tuple[float, int] | None:
    if not shutil.which("llvm-symbolizer"):
        return None
    start = time.perf_counter()
    out = subprocess.run(["llvm-symbolizer", "--inlining", "--demangle", f"--obj={binary}"],
                         input="".join(f"{a:#x}\n" for a in addrs), capture_output=True,
                         text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    return elapsed, sum(1 for line in out.splitlines() if "::" in line)


def time_pyelftools(binary: Path, addrs: list[int]) -> tuple[float, int] | None:
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError:
        return None
    start = time.perf_counter()
    resolved = 0
    with open(binary, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        # Build an address->line table once, then a range table of subprogram DIEs.
        rows: list[tuple[int, int]] = []
        for cu in dwarf.iter_CUs():
            lp = dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            for entry in lp.get_entries():
                if entry.state is not None and not entry.state.end_sequence:
                    rows.append((entry.state.address, entry.state.line))
            for die in cu.iter_DIEs():
                if die.tag == "DW_TAG_subprogram" and "DW_AT_low_pc" in die.attributes:
                    pass
        rows.sort()
        import bisect
        keys = [r[0] for r in rows]
        for a in addrs:
            i = bisect.bisect_right(keys, a) - 1
            if i >= 0:
                resolved += 1
    return time.perf_counter() - start, resolved


def time_symbolizer(tool: str, binary: Path, addrs: list[int]) -> float:
    """The whole leaktrace path: ELF checks, the tool, parsing, Frame objects."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "src"))
    from leaktrace.symbolize import Symbolizer

    start = time.perf_counter()
    result = Symbolizer(tool=tool).resolve((str(binary), a) for a in addrs)
    elapsed = time.perf_counter() - start
    assert len(result) == len(addrs)
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    # The build takes ~30 s, so the binary is kept between runs.
    tmp = Path(tempfile.gettempdir()) / f"leaktrace-bench-{n}"
    tmp.mkdir(exist_ok=True)
    if True:
        src = tmp / "big.cpp"
        binary = tmp / "big"
        if not binary.exists():
            src.write_text(generate_program(n))
            t0 = time.perf_counter()
            subprocess.run(["g++", "-g", "-O2", "-o", str(binary), str(src)], check=True)
            print(f"compiled {n} functions in {time.perf_counter() - t0:.1f} s")
        print(f"binary: {binary.stat().st_size // 1024} KiB")
        addrs = function_addresses(binary)
        print(f"{len(addrs)} unique addresses")
        for tool in ("llvm-symbolizer", "addr2line"):
            if shutil.which(tool):
                print(f"leaktrace Symbolizer(tool={tool!r}) end to end: "
                      f"{time_symbolizer(tool, binary, addrs):.3f} s")
        for name, fn in [("addr2line batch", time_addr2line), ("llvm-symbolizer batch", time_llvm),
                         ("pyelftools line table only (no names)", time_pyelftools)]:
            res = fn(binary, addrs)
            if res is None:
                print(f"{name}: not available")
            else:
                print(f"{name}: {res[0]:.3f} s, {res[1]} resolved")
        libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
        if libc.exists():
            syms = subprocess.run(["nm", "-D", "--defined-only", str(libc)], capture_output=True,
                                  text=True, check=True).stdout.splitlines()
            laddrs = sorted({int(s.split()[0], 16) + 4 for s in syms if " T " in s})[:2000]
            el, _ = time_addr2line(libc, laddrs)
            print(f"addr2line libc (separate debug info): {len(laddrs)} addresses in {el:.3f} s")
            res = time_llvm(libc, laddrs)
            if res:
                print(f"llvm-symbolizer libc: {res[0]:.3f} s")


if __name__ == "__main__":
    main()
