"""Reading (and, for tests, writing) the binary capture files the shim produces.

The reader (and numpy with it) is imported when one of its names is first used, not with the
package: `run` reads the format's constants before the program starts, under limits
(`ulimit -v`) that numpy's OpenBLAS would not survive."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from leaktrace.capture.errors import CaptureError

if TYPE_CHECKING:
    from leaktrace.capture.reader import (
        Capture,
        CaptureHeader,
        Module,
        ProcessInfo,
        Stack,
        read_capture,
    )

__all__ = [
    "Capture",
    "CaptureError",
    "CaptureHeader",
    "Module",
    "ProcessInfo",
    "Stack",
    "read_capture",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("leaktrace.capture.reader"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
