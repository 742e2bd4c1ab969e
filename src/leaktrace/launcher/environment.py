"""The environment variables that tell the shim what to do (the launcher-shim contract,
docs/architecture.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping


def launch_environment(base: Mapping[str, str], *, shim: str, capture_dir: str,
                       notify_path: str, output: str | None = None,
                       max_depth: int | None = None,
                       follow_children: bool = False, skip_children: str | None = None,
                       interval: float | None = None,
                       start: str | None = None,
                       sample_bytes: int | None = None) -> dict[str, str]:
    """`interval`: seconds between snapshots (LEAKTRACE_INTERVAL); `start`: at-load or
    on-mtrace (LEAKTRACE_START); `sample_bytes`: sampling mode's mean (LEAKTRACE_SAMPLE).
    Left unset, an inherited value stays."""
    env = dict(base)
    existing = env.get("LD_PRELOAD", "").strip()
    # Prepended: the shim must see allocations before any other preloaded library makes them.
    env["LD_PRELOAD"] = f"{shim}:{existing}" if existing else shim
    # The shim takes the process whose parent this is for the root of the traced tree.
    env["LEAKTRACE_LAUNCHER_PID"] = str(os.getpid())
    env["LEAKTRACE_DIR"] = capture_dir
    env["LEAKTRACE_NOTIFY"] = notify_path
    if output is not None:
        env["LEAKTRACE_OUTPUT"] = output
    else:
        env.pop("LEAKTRACE_OUTPUT", None)  # an inherited one would name the wrong process
    if max_depth is not None:
        env["LEAKTRACE_MAX_DEPTH"] = str(max_depth)
    if follow_children:
        env["LEAKTRACE_FOLLOW_CHILDREN"] = "1"
    else:
        env.pop("LEAKTRACE_FOLLOW_CHILDREN", None)
    if skip_children:
        env["LEAKTRACE_SKIP_CHILDREN"] = skip_children
    else:
        env.pop("LEAKTRACE_SKIP_CHILDREN", None)
    if interval is not None:
        env["LEAKTRACE_INTERVAL"] = seconds_text(interval)
    if start is not None:
        env["LEAKTRACE_START"] = start
    if sample_bytes is not None:
        env["LEAKTRACE_SAMPLE"] = str(sample_bytes)
    return _ours_last(env)


def _ours_last(env: dict[str, str]) -> dict[str, str]:
    """The shim hides LEAKTRACE_* from the program and edits LD_PRELOAD, so they go last: the
    kernel lays the strings out in this order, and a program that takes the argument and
    environment strings for one area while they follow each other (setproctitle, as sshd's,
    PostgreSQL's, nginx's) would otherwise get a shorter area than natively, its title cut."""
    def ours(item: tuple[str, str]) -> bool:
        return item[0].startswith("LEAKTRACE_") or item[0] == "LD_PRELOAD"

    return dict(sorted(env.items(), key=ours))  # stable: each side keeps its order


def heuristics_error(value: str | None) -> str | None:
    """Why LEAKTRACE_HEURISTICS cannot be used, or None. The shim skips a name it does not
    know, so a misspelt one would quietly turn every heuristic off for the run (valgrind
    refuses an unknown --leak-check-heuristics)."""
    from leaktrace.capture.format import HEURISTIC_NONE, HEURISTICS

    if value is None or value in ("", "all", "none"):
        return None
    names = [name for number, name in HEURISTICS.items() if number != HEURISTIC_NONE]
    unknown = [name for name in value.split(",") if name and name not in names]
    if not unknown:
        return None
    return (f"LEAKTRACE_HEURISTICS={value}: unknown heuristic {unknown[0]!r}: use all, none "
            f"or a comma-separated list of {', '.join(names)}")


def as_if_run_directly(env: MutableMapping[str, str], program: str) -> None:
    """A shell puts the path of the command it runs in `_`, and here that command is
    leaktrace: the program finds its own path there instead, as when run without us (`env`
    prints it, bash keeps it as `$_`). Left alone when `_` names something else."""
    named = env.get("_")
    if named and any(_same_file(named, ours) for ours in (sys.argv[0], sys.executable)):
        env["_"] = program


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def seconds_text(seconds: float) -> str:
    """Plain decimal seconds to the millisecond ("0.1", "2"): the shim reads digits and a
    point only, never an exponent."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"


def start_mode(requested: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(LEAKTRACE_START to set, warning): libmemleak's MEMLEAK_CONFIG=mtraceinit means
    at-load; an explicit --start wins over it."""
    libmemleak_at_load = env.get("MEMLEAK_CONFIG", "").strip() == "mtraceinit"
    if requested is None:
        return ("at-load" if libmemleak_at_load else None), None
    if requested != "at-load" and libmemleak_at_load:
        return requested, f"--start={requested} overrides MEMLEAK_CONFIG=mtraceinit"
    return requested, None
