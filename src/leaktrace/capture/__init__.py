"""Reading (and, for tests, writing) the binary capture files the shim produces."""

from leaktrace.capture.errors import CaptureError
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
