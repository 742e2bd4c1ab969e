"""Child process of report.load_track_report: builds a tracked block's report and writes it
pickled to stdout. Arguments: CAPTURE STACK_IDS|- SUPPRESSIONS(0|1)."""

from __future__ import annotations

import pickle
import sys

from leaktrace.tracking.report import build_track_report


def main(argv: list[str]) -> int:
    path, ids, suppressions = argv
    stack_ids = None if ids == "-" else {int(i) for i in ids.split(",") if i}
    report = build_track_report(path, stack_ids, suppressions == "1")
    sys.stdout.buffer.write(pickle.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
