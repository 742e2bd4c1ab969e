"""Where leaktrace/annotate.h is installed (docs/annotations.md): the header a custom allocator
includes to tell leaktrace about its blocks. Installed with the package, under include/."""

from __future__ import annotations

from pathlib import Path

from leaktrace.errors import LeaktraceError

HEADER = "leaktrace/annotate.h"


def include_dir() -> Path:
    """The directory to pass to the compiler with -I (it holds leaktrace/annotate.h)."""
    directory = Path(__file__).with_name("include")
    if not (directory / HEADER).is_file():
        raise LeaktraceError(f"{directory / HEADER} is missing: reinstall leaktrace")
    return directory
