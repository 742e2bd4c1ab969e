"""Where things are, shared by every module of the benchmark (bench/run.py)."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_SHIM = REPO / "builddir" / "libleaktrace_shim.so"

# The leaktrace Python package the CLI and the report are run from. run.py points it at a copy
# taken when the benchmark starts, with a copy of the shim, so that a rebuild in the shared
# tree during the benchmark cannot mix versions. Read it as `paths.SOURCE_TREE`.
SOURCE_TREE = REPO / "src"
# (path as used, path as shown in the report) for those copies.
DISPLAY_PATHS: list[tuple[str, str]] = []


def shown(text: str) -> str:
    """A command or path as shown in the report: snapshot copies under their original names,
    paths inside the repository relative to it."""
    for used, original in DISPLAY_PATHS:
        text = text.replace(used, original)
    return text.replace(f"{REPO}/", "")


def relative(command: str | None) -> str | None:
    return shown(command) if command is not None else None
