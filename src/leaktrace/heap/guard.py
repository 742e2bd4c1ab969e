"""Fail a block of code whose heap usage grows: a context manager, a decorator that can
repeat the function (so that a one-time cache or warm-up allocation is not called a leak),
and the same as a plain function call."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from leaktrace.heap.mallinfo import HeapDelta, HeapSnapshot, snapshot

P = ParamSpec("P")
R = TypeVar("R")


class HeapGrowthError(AssertionError):
    """Heap usage grew by more than allowed (an AssertionError, so test runners report it
    as a failed assertion)."""

    def __init__(self, message: str, delta: HeapDelta) -> None:
        super().__init__(message)
        self.delta = delta


def _settled_snapshot() -> HeapSnapshot:
    # Free unreachable Python objects first: their native memory is not a leak.
    gc.collect()
    return snapshot()


def _check(delta: HeapDelta, max_bytes: int, what: str, runs: int) -> None:
    if delta.in_use > max_bytes:
        per_run = f" ({delta.in_use / runs:,.1f} bytes per run)" if runs > 1 else ""
        raise HeapGrowthError(
            f"heap usage grew by {delta.in_use:,} bytes over {what}{per_run}; allowed: "
            f"{max_bytes:,} (uordblks {delta.uordblks:+,}, hblkhd {delta.hblkhd:+,}, "
            f"mmapped blocks {delta.hblks:+,})",
            delta,
        )


def check_growth(
    function: Callable[[], R], *, max_bytes: int = 0, repeat: int = 1, warmup: int = 0
) -> R:
    """Call `function` (no arguments: use a lambda or functools.partial) as growth_limit's
    decorator would, and return its last result."""
    return growth_limit(max_bytes, repeat=repeat, warmup=warmup)(function)()


# Lower case: it reads like a function, `with heap.growth_limit(...)` / `@heap.growth_limit()`.
class growth_limit:
    """Fail when heap usage (uordblks + hblkhd) grows by more than `max_bytes`.

    As a context manager, the block runs once and is measured once. As a decorator, the
    function is called `warmup` times unmeasured, then `repeat` times measured together: a
    function that leaks L bytes per call grows the heap by about repeat * L, while a one-time
    allocation shows up in the warm-up only. The decorated function returns the last result.
    """

    def __init__(self, max_bytes: int = 0, *, repeat: int = 1, warmup: int = 0) -> None:
        if max_bytes < 0 or repeat < 1 or warmup < 0:
            raise ValueError("growth_limit needs max_bytes >= 0, repeat >= 1 and warmup >= 0")
        self.max_bytes = max_bytes
        self.repeat = repeat
        self.warmup = warmup
        self._before: HeapSnapshot | None = None
        self.delta: HeapDelta | None = None  # what the last measurement found

    def __enter__(self) -> growth_limit:
        self._before = _settled_snapshot()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._before is not None
        self.delta = _settled_snapshot() - self._before
        if kind is None:  # an exception from the block matters more than the heap
            _check(self.delta, self.max_bytes, "the block", 1)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            result: Any = None
            for _ in range(self.warmup):
                result = function(*args, **kwargs)
            before = _settled_snapshot()
            for _ in range(self.repeat):
                result = function(*args, **kwargs)
            self.delta = _settled_snapshot() - before
            name = getattr(function, "__qualname__", repr(function))
            runs = f"{self.repeat} call{'s' if self.repeat > 1 else ''} of {name}"
            _check(self.delta, self.max_bytes, runs, self.repeat)
            return result  # type: ignore[no-any-return]

        return measured
