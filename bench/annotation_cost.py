#!/usr/bin/env python3
"""What leaktrace/annotate.h's requests cost (docs/annotations.md): bench/annotation_cost.c's
pool alloc/free pair without the macros, with them and no leaktrace (one GOT load and a
never-taken branch per request), and with them under `leaktrace run` (each request recorded
with its backtrace). The median of RUNS runs each, interleaved; prints a Markdown table.

    python3 bench/annotation_cost.py [--runs 7] [-n 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def ns_per_pair(argv: list[str]) -> float:
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("-n", "--pairs", type=int, default=10_000_000)
    args = parser.parse_args()
    from leaktrace.annotations import include_dir
    work = Path(tempfile.mkdtemp(prefix="lt-annotations-"))
    source = str(BENCH / "annotation_cost.c")
    plain, annotated = work / "plain", work / "annotated"
    for exe, flags in ((plain, ["-DNO_ANNOTATIONS"]), (annotated, [f"-I{include_dir()}"])):
        subprocess.run(["gcc", "-O2", "-g", *flags, "-o", str(exe), source], check=True)
    pairs = str(args.pairs)
    variants = {
        "no macros": [str(plain), pairs],
        "macros, no leaktrace": [str(annotated), pairs],
        "macros, under leaktrace run": [sys.executable, "-m", "leaktrace", "run", "-o",
                                        str(work / "run.lt"), "--", str(annotated), pairs],
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, argv in variants.items():
            (work / "run.lt").unlink(missing_ok=True)
            results[name].append(ns_per_pair(argv))
    print(f"{args.pairs:,} alloc/free pairs, median of {args.runs} runs\n")
    print("| variant | ns per alloc/free pair |")
    print("|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
