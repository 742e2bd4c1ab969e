"""The environment variables that tell the shim what to do (the launcher-shim contract,
docs/architecture-python.md)."""

from __future__ import annotations

from collections.abc import Mapping


def launch_environment(base: Mapping[str, str], *, shim: str, capture_dir: str,
                       notify_path: str, output: str | None = None,
                       max_depth: int | None = None,
                       follow_children: bool = False) -> dict[str, str]:
    env = dict(base)
    existing = env.get("LD_PRELOAD", "").strip()
    # Prepended: the shim must see allocations before any other preloaded library makes them.
    env["LD_PRELOAD"] = f"{shim}:{existing}" if existing else shim
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
    return env
