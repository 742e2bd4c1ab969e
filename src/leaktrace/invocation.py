"""How the user started leaktrace, so that hints name a command that works when pasted:
`leaktrace report F` when `leaktrace` is on PATH, `.venv/bin/leaktrace report F` when that is
what was typed, `python3 -m leaktrace report F` for `-m`."""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def leaktrace_command(argv0: str | None = None, executable: str | None = None) -> str:
    """The shell words that start leaktrace the way it was started this time."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(argv0) == "__main__.py" or not argv0:  # python -m leaktrace
        python = executable or sys.executable or "python3"
        found = shutil.which(os.path.basename(python))
        if found and os.path.realpath(found) == os.path.realpath(python):
            python = os.path.basename(python)
        return f"{shlex.quote(_short(python))} -m leaktrace"
    name = os.path.basename(argv0)
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(argv0):
        return shlex.quote(name)  # on PATH: the plain name works
    return shlex.quote(_short(argv0))


def _short(path: str) -> str:
    """A path below the current directory as a relative path (as the user most likely typed
    it); any other path as given."""
    if not os.path.isabs(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if not relative.startswith("..") else path


def report_hint(path: str) -> str:
    """`leaktrace report PATH`, as the user can paste it."""
    return f"{leaktrace_command()} report {shlex.quote(path)}"
