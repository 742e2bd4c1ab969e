#!/usr/bin/env python3
"""Sampling mode's accuracy and cost: runs bench/workload.c (2 threads, 1000-byte leaks, so a
2 MB leak at 1,000,000 iterations per thread) RUNS times per sampling mean under
`LEAKTRACE_SAMPLE`, reads each capture's report, and counts how often the printed 95% interval
of "definitely lost" holds the true total, how many blocks were sampled, the error of the
estimate, whether the leak site was found, and the CPU time against native runs interleaved
with them. Prints a Markdown table (docs/benchmarks.md has the last one).

    python3 bench/sampling_accuracy.py [--runs 20] [--means 4096,65536,524288] [-n 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LEAK_SIZE = 1000


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def leak_report(capture: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "leaktrace", "report", str(capture), "--format",
                           "json", "--show", "definite"], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--means", default="4096,65536,524288")
    parser.add_argument("-n", "--iterations", type=int, default=1_000_000)
    parser.add_argument("--shim", default=None, help="default: the installed package's")
    args = parser.parse_args()
    if args.shim is None:
        from leaktrace.shim_library import find_shim_library
        args.shim = str(find_shim_library())
    work = Path(tempfile.mkdtemp(prefix="lt-sampling-"))
    exe = work / "workload"
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-g", "-pthread", "-o", str(exe),
                    str(BENCH / "workload.c")], check=True)
    argv = [str(exe), "-n", str(args.iterations), "-t", "2", "-l", str(LEAK_SIZE)]
    true_bytes = 2 * (args.iterations // 1000) * LEAK_SIZE
    rows = []
    for mean in [int(m) for m in args.means.split(",")]:
        native_cpu, sampled_cpu, native_wall, sampled_wall = [], [], [], []
        inside = found = 0
        samples, errors = [], []
        for i in range(args.runs):
            wall, cpu = timed(argv, dict(os.environ))
            native_wall.append(wall)
            native_cpu.append(cpu)
            capture = work / f"s{mean}-{i}.lt"
            env = dict(os.environ, LD_PRELOAD=args.shim, LEAKTRACE_OUTPUT=str(capture),
                       LEAKTRACE_SAMPLE=str(mean))
            wall, cpu = timed(argv, env)
            sampled_wall.append(wall)
            sampled_cpu.append(cpu)
            report = leak_report(capture)
            lost = report["summary"]["definitely_lost"]
            low, high = lost.get("bytes_interval", [lost["bytes"], lost["bytes"]])
            inside += low <= true_bytes <= high
            site = [r for r in report["records"]
                    if any(f.get("function") == "leak_site" for f in r["frames"])]
            found += bool(site)
            samples.append(sum(r["estimate"]["sampled_blocks"] for r in site if "estimate" in r))
            errors.append(abs(lost["bytes"] - true_bytes) / true_bytes)
            capture.unlink()
        rows.append((mean, statistics.median(samples), statistics.mean(errors), max(errors),
                     inside, found, statistics.median(sampled_cpu) / statistics.median(native_cpu),
                     statistics.median(sampled_wall) / statistics.median(native_wall)))
        print(f"mean {mean}: done", file=sys.stderr)
    print(f"Workload: bench/workload.c -n {args.iterations:,} -t 2 -l {LEAK_SIZE} "
          f"(true leak {true_bytes:,} bytes in {true_bytes // LEAK_SIZE:,} blocks), "
          f"{args.runs} runs per mean, each interleaved with a native run.\n")
    print("| --sample mean | sampled leak blocks (median) | mean abs. error | worst error | "
          "true total inside the 95% interval | leak site found | CPU x native | wall x native |")
    print("|---|---|---|---|---|---|---|---|")
    for mean, n, err, worst, inside, found, cpu, wall in rows:
        print(f"| {mean:,} | {n:,.0f} | {err:.1%} | {worst:.1%} | {inside} of {args.runs} | "
              f"{found} of {args.runs} | {cpu:.2f} | {wall:.2f} |")


if __name__ == "__main__":
    main()
