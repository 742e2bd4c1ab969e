"""Where the shim shared library is: the one place that decides it."""

from __future__ import annotations

import os
from pathlib import Path

from leaktrace.errors import LeaktraceError

SHIM_FILE_NAME = "libleaktrace_shim.so"
SHIM_ENV = "LEAKTRACE_SHIM"  # overrides the installed copy (a build tree, a test)


def find_shim_library() -> Path:
    """$LEAKTRACE_SHIM if set, else libleaktrace_shim.so installed next to this package."""
    configured = os.environ.get(SHIM_ENV)
    path = Path(configured) if configured else Path(__file__).with_name(SHIM_FILE_NAME)
    if not path.is_file():
        how = (f"{SHIM_ENV}={configured} does not name a file" if configured else
               f"{path} is missing: install leaktrace with its shim, or set {SHIM_ENV}")
        raise LeaktraceError(f"leaktrace shim not found: {how}")
    path = path.resolve()
    # LD_PRELOAD splits on spaces and colons: such a path would be cut in pieces.
    if any(c in str(path) for c in " :"):
        raise LeaktraceError(f"the shim path {path} contains a space or colon, which LD_PRELOAD "
                             "cannot carry; move it or set LEAKTRACE_SHIM to another copy")
    return path
