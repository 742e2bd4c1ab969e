"""leaktrace.track(): record the native allocations made inside a block of Python code and
report those still live when it ends, with valgrind's leak kinds.

    with leaktrace.track() as t:
        module.parse(data)
    assert t.leaked_bytes == 0, t.report().render()

A block's allocations are the ones born in its generations (shim/track.c): the entering
thread's own, plus with threads="all" every generation other threads stamp until it ends."""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from leaktrace.errors import LeaktraceError
from leaktrace.leak_kinds import kind_list_text, parse_kind_list
from leaktrace.tracking.shim_session import session

if TYPE_CHECKING:
    from leaktrace.model import Summary
    from leaktrace.tracking.report import TrackReport

F = TypeVar("F", bound=Callable[..., Any])
THREAD_CHOICES = ("all", "current")

_nesting = threading.local()  # .open: this thread's open Tracker objects, innermost last


class LeakError(AssertionError):
    """A tracked block left more bytes of the checked leak kinds than allowed."""

    def __init__(self, message: str, tracker: Tracker) -> None:
        super().__init__(message)
        self.tracker = tracker


class Tracker:
    """What `leaktrace.track(...)` returns: a context manager, a decorator, and after the
    block the results (`report()`, `leaked_bytes`, `summary`, `capture_path`)."""

    def __init__(self, *, repeat: int = 1, threads: str = "all", collect: bool = True,
                 scan: bool = True, max_bytes: int | None = None, kinds: str = "definite,possible",
                 max_depth: int = 64, suppressions: bool = True) -> None:
        if repeat < 1:
            raise ValueError("repeat must be 1 or more")
        if threads not in THREAD_CHOICES:
            raise ValueError(f"threads must be 'all' or 'current', not {threads!r}")
        self.repeat = repeat
        self.threads = threads
        self.collect = collect  # gc.collect() before the scan: Python garbage is not a leak
        self.scan = scan
        self.max_bytes = max_bytes  # if set, leaving the block raises LeakError above it
        self.kinds = parse_kind_list(kinds)  # what max_bytes counts
        self.max_depth = max_depth
        self.suppressions = suppressions  # the default suppressions (glibc, libstdc++, ld.so)
        self.capture_path: Path | None = None
        self._generation = 0
        self._previous = 0
        self._own_generations: set[int] = set()  # this thread's, nested blocks' included
        self._stack_ids: set[int] | None = None  # repeat: backtraces that grew every time
        self._report: TrackReport | None = None
        self._kind_totals: dict[str, tuple[int, int]] | None = None
        self._active = False
        self._ended_by: str | None = None  # the interrupt that ended the block uncaptured

    # ---- with -----------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        if self.repeat != 1:
            raise LeaktraceError("leaktrace.track(repeat=N) runs a function N times: use it as "
                                 "a decorator or call .run(function)")
        self._begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._end_as(kind)

    # ---- decorator and run ----------------------------------------------------------------
    def __call__(self, function: F) -> F:
        settings = dict(repeat=self.repeat, threads=self.threads, collect=self.collect,
                        scan=self.scan, max_bytes=self.max_bytes,
                        kinds=kind_list_text(self.kinds), max_depth=self.max_depth,
                        suppressions=self.suppressions)

        @functools.wraps(function)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            tracker = Tracker(**settings)  # type: ignore[arg-type]
            tracked.last_track = tracker  # type: ignore[attr-defined]
            return tracker.run(function, *args, **kwargs)

        return tracked  # type: ignore[return-value]

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Calls function(*args, **kwargs) `repeat` times inside the block; returns the last
        result. With repeat > 1 the first call is a warm-up: the report holds the blocks of
        the other calls from the backtraces that left live blocks in every one of them."""
        # Made before the block: what the tracker keeps must not be among the block's blocks.
        iterations: list[set[int] | range] = [range(0)] * self.repeat
        result: Any = None
        self._begin()
        try:
            for i in range(self.repeat):
                iterations[i], result = self._run_once(function, args, kwargs)
        except BaseException as e:
            self._end_as(type(e))  # what the calls so far left, as one block
            raise
        self._end(capture=True, check_limit=True,
                  iterations=iterations[1:] if self.repeat > 1 else None)
        return result

    def _end_as(self, ended_by: type[BaseException] | None) -> None:
        """Ends the block the way its code left it. An exception still gets the capture (the
        leaks of an error path are often the ones looked for), but no LeakError over it; an
        interrupt or exit (KeyboardInterrupt, SystemExit) gets none, so that it is not held
        up by a scan."""
        if ended_by is None:
            self._end(capture=True, check_limit=True)
        elif not issubclass(ended_by, (KeyboardInterrupt, SystemExit)):
            # GeneratorExit, asyncio's CancelledError: control flow, captured too
            self._end(capture=True, check_limit=False)
        else:
            self._ended_by = ended_by.__name__
            self._end(capture=False, check_limit=False)

    # ---- results --------------------------------------------------------------------------
    def report(self) -> TrackReport:
        """The report of the blocks allocated inside and still live (built once, then kept)."""
        self._require_capture()
        if self._report is None:
            from leaktrace.tracking.report import load_track_report
            self._report = load_track_report(str(self.capture_path), self._stack_ids,
                                             self.suppressions)
        return self._report

    @property
    def leaked_bytes(self) -> int:
        """Definitely, indirectly and possibly lost bytes (not still reachable)."""
        from leaktrace.tracking.report import LEAKED_KINDS
        return self._bytes_of(LEAKED_KINDS)

    @property
    def live_bytes(self) -> int:
        """Every live block's bytes, reachable or not."""
        return sum(size for _, size in self._totals().values())

    @property
    def summary(self) -> Summary:
        """The report's model.Summary (live bytes, leak totals per kind)."""
        return self.report().summary

    def checked_bytes(self) -> int:
        """Bytes of the leak kinds `kinds` names: what max_bytes limits."""
        return self._bytes_of(self.kinds)

    def _bytes_of(self, kinds: frozenset[str]) -> int:
        """From the capture's totals; from the report (default suppressions applied, which
        needs symbols) only when there is something to suppress."""
        quick = sum(size for kind, (_, size) in self._totals().items() if kind in kinds)
        if quick and self.suppressions:
            return self.report().bytes_of(kinds)
        return quick

    def _totals(self) -> dict[str, tuple[int, int]]:
        self._require_capture()
        if self._kind_totals is None:
            from leaktrace.tracking.report import kind_totals
            self._kind_totals = kind_totals(str(self.capture_path), self._stack_ids)
        return self._kind_totals

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Copies the capture where `leaktrace report` / `diff` can read it later."""
        import shutil
        self._require_capture()
        assert self.capture_path is not None
        return Path(shutil.copyfile(self.capture_path, path))

    # ---- internals ------------------------------------------------------------------------
    # The tracker's own Python objects (generation numbers, sets, ranges) are made while the
    # thread is quiet (shim_session.quiet): they are not recorded, so they never show up as
    # the tracked code's blocks (with PYTHONMALLOC=malloc each one is a malloc'd block).
    def _begin(self) -> None:
        if self._active:
            raise LeaktraceError("leaktrace: this tracked block is already open")
        shim = session()
        shim.open_block(self.max_depth)
        previous = shim.quiet()
        try:
            self._generation = shim.reserve_generations()
            self._previous = previous
            self._own_generations = {self._generation}
            self._active = True
            _open_blocks().append(self)
        except BaseException:
            shim.leave_thread(previous)
            raise
        shim.leave_thread(self._generation)  # the block starts here

    def _require_capture(self) -> None:
        if self.capture_path is not None:
            return
        if self._ended_by is not None:
            raise LeaktraceError(f"leaktrace: the tracked block ended with {self._ended_by}: "
                                 "nothing was captured")
        raise LeaktraceError("leaktrace: the tracked block has not ended yet")

    def _end(self, *, capture: bool, check_limit: bool,
             iterations: list[set[int] | range] | None = None) -> set[int] | range:
        """With `iterations` (repeat), the calls whose growth is reported. Returns the block's
        generations."""
        shim = session()
        if capture and self.collect:
            gc.collect()  # finalizers run now belong to the block
        shim.quiet()
        iteration_captures: list[Path] = []
        own = self._generations()
        try:
            if capture:
                generations = own if iterations is None else _union(iterations)
                # The scan first: reading captures puts block addresses in this process's
                # memory, where the scan would take them for pointers.
                self.capture_path = self._capture(generations, self.scan)
                # A loop, not a comprehension: that would make `self` a cell, a Python object
                # made when _end starts, before the thread is quiet.
                for g in iterations or ():
                    iteration_captures.append(self._capture(g, scan=False))
        finally:
            opened = _open_blocks()
            if opened and opened[-1] is self:
                opened.pop()
                if opened:
                    opened[-1]._own_generations |= self._own_generations
            self._active = False
            shim.close_block()
            shim.leave_thread(self._previous)
        # Read once detached: what it imports (numpy) must not be loaded, nor its GOT
        # patched, while the shim is attached.
        if iteration_captures:
            self._stack_ids = _growing_stacks(iteration_captures)
        if check_limit and self.max_bytes is not None:
            self._check_limit()
        return own

    def _capture(self, generations: set[int] | range, scan: bool) -> Path:
        """What the capture call itself allocates (ctypes buffers, the file name) goes into a
        generation of its own, outside the block's."""
        shim = session()
        _, previous = shim.enter_thread()
        try:
            return shim.capture(generations, scan)
        finally:
            shim.leave_thread(previous)

    def _generations(self) -> set[int] | range:
        if self.threads == "current":
            return self._own_generations
        return range(self._generation, session().current_generation() + 1)

    def _run_once(self, function: Callable[..., Any], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> tuple[set[int] | range, Any]:
        """One call in a nested block of its own: (its generations, its result)."""
        inner = Tracker(threads=self.threads, max_depth=self.max_depth)
        inner._begin()
        try:
            result = function(*args, **kwargs)
        finally:
            generations = inner._end(capture=False, check_limit=False)
        return generations, result

    def _check_limit(self) -> None:
        assert self.max_bytes is not None
        found = self.checked_bytes()
        if found > self.max_bytes:
            raise LeakError(
                f"{found} bytes {kind_list_text(self.kinds)} leaked inside the tracked block "
                f"(limit {self.max_bytes})\n" + self.report().text(
                    kinds=kind_list_text(self.kinds)), self)


def _open_blocks() -> list[Tracker]:
    opened = getattr(_nesting, "open", None)
    if opened is None:
        opened = _nesting.open = []
    return opened


def _growing_stacks(paths: list[Path]) -> set[int]:
    """Backtraces whose site (report.live_sites) has live blocks in every one of these
    captures (one per call)."""
    import ctypes

    from leaktrace.tracking.report import live_sites

    def address(function: Any) -> int:
        return ctypes.cast(function, ctypes.c_void_p).value or 0

    interpreter = (address(ctypes.pythonapi.PyEval_EvalCode),
                   address(ctypes.CDLL(None).Py_IsInitialized))  # libpython, or the executable
    neutral = (address(ctypes.CDLL(None).gnu_get_libc_version),)
    common: dict[tuple[int, ...], set[int]] | None = None
    for path in paths:
        try:
            sites = live_sites(str(path), interpreter, neutral)
        finally:
            path.unlink()
        if common is None:
            common = sites
        else:
            common = {site: ids | sites[site] for site, ids in common.items() if site in sites}
    return set().union(*common.values()) if common else set()


def _union(parts: list[set[int] | range]) -> set[int]:
    result: set[int] = set()
    for part in parts:
        result.update(part)
    return result


def track(*, repeat: int = 1, threads: str = "all", collect: bool = True, scan: bool = True,
          max_bytes: int | None = None, kinds: str = "definite,possible", max_depth: int = 64,
          suppressions: bool = True) -> Tracker:
    """Track the native allocations of a block: `with track() as t:` or `@track()`.

    repeat: run a function N times (decorator, `.run`), report only what grew every time
    after the first; threads: "all" (default: every thread's allocations during the block)
    or "current" (only the thread that entered it); collect: gc.collect() before the scan;
    max_bytes/kinds: raise LeakError when more bytes of these leak kinds are left."""
    return Tracker(repeat=repeat, threads=threads, collect=collect, scan=scan,
                   max_bytes=max_bytes, kinds=kinds, max_depth=max_depth,
                   suppressions=suppressions)
