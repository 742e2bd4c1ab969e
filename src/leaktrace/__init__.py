"""leaktrace: find native heap leaks. The command line is `leaktrace` (cli.py); in Python,
`leaktrace.track()` records the allocations of a block of code (tracking/). Nothing heavy is
imported until it is used."""

from __future__ import annotations

from typing import Any

_LAZY = {name: "leaktrace.tracking" for name in ("track", "Tracker", "LeakError", "TrackReport")}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'leaktrace' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
