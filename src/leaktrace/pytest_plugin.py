"""pytest plugin (entry point `leaktrace`, loaded by pytest itself): fail a test whose call
leaves native memory behind, with the loss records and their C file:line in the failure.

    pytest --leaktrace                                   # check every test
    @pytest.mark.leaktrace(max_bytes=0, kinds="definite", repeat=3)   # check one test

Only the test function's call is tracked (fixtures set up and torn down outside it), in the
process that runs the test, so it works under pytest-xdist: each worker tracks its own tests.
A failing test's capture is kept in --leaktrace-dir for `leaktrace report` / `diff`.
Nothing is imported or loaded until a test is checked: without the option or the marker the
plugin costs nothing."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leaktrace.tracking.tracker import Tracker

MARKER = "leaktrace"
DEFAULT_KINDS = "definite,possible"
DEFAULT_DIR = ".leaktrace"
RECORDS_SHOWN = 10


@dataclass
class CheckSettings:
    max_bytes: int
    kinds: str
    repeat: int
    threads: str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leaktrace", "native memory leaks (leaktrace)")
    group.addoption("--leaktrace", action="store_true", default=False,
                    help="Fail every test whose call leaves native memory of the checked leak "
                         "kinds behind (tests marked leaktrace are checked either way).")
    group.addoption("--leaktrace-fail-on", default=None, metavar="KINDS",
                    help="Leak kinds that fail a test: definite, indirect, possible, reachable "
                         f"(comma-separated), all (default: {DEFAULT_KINDS}; a marker's "
                         "kinds= wins).")
    group.addoption("--leaktrace-max-bytes", type=int, default=0, metavar="N",
                    help="Bytes of those kinds a test may leave (default 0).")
    group.addoption("--leaktrace-dir", default=DEFAULT_DIR, metavar="DIR",
                    help=f"Where failing tests' captures go (default: {DEFAULT_DIR} in the "
                         "current directory).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(max_bytes=0, kinds='{DEFAULT_KINDS}', repeat=1, threads='all'): fail the test "
        "if its call leaves more than max_bytes of these native leak kinds; with repeat=N the "
        "call runs N times and only what grew every time after the first counts.")
    config.stash[_failures_key] = []
    config.pluginmanager.register(_LeakedCaptures(config), "leaktrace-leaked-captures")
    kinds = config.getoption("leaktrace_fail_on", None)
    if kinds:
        from leaktrace.errors import LeaktraceError
        from leaktrace.leak_kinds import parse_kind_list
        try:
            parse_kind_list(kinds)
        except LeaktraceError as error:
            raise pytest.UsageError(f"--leaktrace-fail-on: {error}") from None
    if (config.getoption("leaktrace_max_bytes", 0) or 0) < 0:
        raise pytest.UsageError("--leaktrace-max-bytes: must be 0 or more")
    if config.getoption("leaktrace", False):
        _check_capture_dir(config)


def _capture_dir(config: pytest.Config) -> Path:
    directory = Path(config.getoption("leaktrace_dir"))
    if not directory.is_absolute():
        directory = Path(config.invocation_params.dir) / directory
    return directory


def _check_capture_dir(config: pytest.Config) -> None:
    """Before any test runs: a failing test's capture must have somewhere to go (a path that
    is a file, or under /proc, ended each leaking test in a traceback instead of its report)."""
    import os

    directory = _capture_dir(config)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise pytest.UsageError(f"--leaktrace-dir: {existing} is not a directory")
    from leaktrace.kernel_filesystems import kernel_filesystem

    kernel_fs = kernel_filesystem(str(existing))
    if kernel_fs is not None:
        raise pytest.UsageError(f"--leaktrace-dir: {existing} is on the kernel's {kernel_fs} "
                                "filesystem, where no file can be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"--leaktrace-dir: {existing} is not writable")


_failures_key = pytest.StashKey[list[str]]()
_CAPTURE_PROPERTY = "leaktrace_capture"


class _LeakedCaptures:
    """Collects the captures of tests that leaked from their reports, which pytest-xdist
    sends from its workers to the process that prints the summary (a worker's own list
    stayed in the worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":  # the teardown's report carries the properties too
            return
        for name, value in report.user_properties:
            if name == _CAPTURE_PROPERTY:
                self._config.stash[_failures_key].append(f"{report.nodeid}: {value}")

# The allocators that make each Python object its own malloc call, which the shim sees.
MALLOC_ALLOCATORS = ("malloc", "malloc_debug")


def pytest_report_header(config: pytest.Config) -> str | None:
    if not config.getoption("leaktrace"):
        return None
    import os
    if os.environ.get("PYTHONMALLOC") in MALLOC_ALLOCATORS:
        return "leaktrace: PYTHONMALLOC=malloc: Python objects and PyMem blocks are checked too"
    return ("leaktrace: native memory only: Python objects and PyMem_Malloc blocks come from "
            "pymalloc's arenas, unseen; PYTHONMALLOC=malloc checks them too (docs/tracking.md)")


def _settings(item: pytest.Function) -> CheckSettings | None:
    marker = item.get_closest_marker(MARKER)
    config = item.config
    if marker is None and not config.getoption("leaktrace"):
        return None
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = set(options) - {"max_bytes", "kinds", "repeat", "threads"}
    if unknown:
        pytest.fail(f"@pytest.mark.leaktrace: unknown argument {sorted(unknown)[0]!r} "
                    "(max_bytes, kinds, repeat, threads)", pytrace=False)
    try:
        max_bytes = int(options.get("max_bytes", config.getoption("leaktrace_max_bytes")))
        repeat = int(options.get("repeat", 1))
    except (TypeError, ValueError):
        max_bytes = repeat = -1
    if max_bytes < 0 or repeat < 1:
        pytest.fail("@pytest.mark.leaktrace: max_bytes must be a number 0 or more, repeat "
                    "1 or more", pytrace=False)
    return CheckSettings(
        max_bytes=max_bytes,
        kinds=str(options.get("kinds", config.getoption("leaktrace_fail_on") or DEFAULT_KINDS)),
        repeat=repeat,
        threads=str(options.get("threads", "all")),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    settings = _settings(pyfuncitem)
    if settings is None:
        return None  # pytest calls the test as usual
    function = pyfuncitem.obj
    if inspect.iscoroutinefunction(function):
        return None  # an async plugin runs it: not checked
    from leaktrace.errors import LeaktraceError
    from leaktrace.tracking.tracker import Tracker

    try:
        tracker = Tracker(repeat=settings.repeat, threads=settings.threads,
                          kinds=settings.kinds)
    except (LeaktraceError, ValueError) as error:
        pytest.fail(f"@pytest.mark.leaktrace: {error}", pytrace=False)
    arguments = {name: pyfuncitem.funcargs[name]
                 for name in pyfuncitem._fixtureinfo.argnames}
    tracker.run(function, **arguments)
    _check(pyfuncitem, tracker, settings)
    return True


def _check(item: pytest.Function, tracker: Tracker, settings: CheckSettings) -> None:
    assert tracker.capture_path is not None
    try:
        found = tracker.checked_bytes()
        if found <= settings.max_bytes:
            return
        saved = _save_capture(item, tracker)
        report = tracker.report()
        report.capture_path = str(saved)
        text = report.text(kinds=settings.kinds, top=RECORDS_SHOWN)
    finally:
        tracker.capture_path.unlink(missing_ok=True)
    item.user_properties.append((_CAPTURE_PROPERTY, str(saved)))
    pytest.fail(f"leaktrace: the test left {found} bytes of native memory "
                f"({settings.kinds}; {settings.max_bytes} allowed)\n"
                f"capture: {saved} (leaktrace report {saved})\n\n{text}", pytrace=False)


def _save_capture(item: pytest.Function, tracker: Tracker) -> Path:
    directory = _capture_dir(item.config)
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid).strip("_")[:150]
    worker = getattr(item.config, "workerinput", {}).get("workerid")
    stem = f"{name}.{worker}" if worker else name
    path, n = directory / f"{stem}.lt", 0
    while path.exists():  # an earlier run's capture of the same test stays
        n += 1
        path = directory / f"{stem}.{n}.lt"
    return tracker.save(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    failures = config.stash.get(_failures_key, [])
    if failures:
        terminalreporter.write_sep("-", "leaktrace: captures of tests that leaked")
        for line in failures:
            terminalreporter.write_line(line)
