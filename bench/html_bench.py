"""Size and opening time of the HTML report for a capture with 10,000 distinct stacks
(tests/programs/many_stacks.c), in headless Chromium.

The page records performance.now() once it is drawn (body data-render-ms: from navigation
start, so parsing the file and running its script are included). Chromium's own start-up is
not. Run: python3 bench/html_bench.py [RUNS]   (numbers go to docs/benchmarks-html.md)
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAKTRACE = [sys.executable, "-m", "leaktrace"]


def main(runs: int) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is needed: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        exe = work / "many_stacks"
        subprocess.run(["gcc", "-O2", "-g", "-o", str(exe),
                        str(ROOT / "tests" / "programs" / "many_stacks.c")], check=True)
        capture = work / "many.lt"
        subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--", str(exe)],
                       capture_output=True, check=True)
        page = work / "many.html"
        started = time.monotonic()
        subprocess.run([*LEAKTRACE, "report", str(capture), "--format", "html", "--show",
                        "all", "-o", str(page)], check=True)
        written = time.monotonic() - started
        times = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as profile:
                dom = subprocess.run(
                    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
                     f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                    capture_output=True, text=True, check=True).stdout
            match = re.search(r'data-render-ms="([\d.]+)"', dom)
            assert match, "the page did not finish drawing"
            times.append(float(match.group(1)))
        print(f"page: {page.stat().st_size:,} bytes for 10,000 stacks; "
              f"`leaktrace report --format html`: {written:.2f} s")
        print(f"opened and drawn in Chromium (ms, {runs} runs): median "
              f"{statistics.median(times):.0f}, min {min(times):.0f}, max {max(times):.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
