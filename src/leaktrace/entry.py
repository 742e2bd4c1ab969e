"""The `leaktrace` command's entry point: as small as it can be, so that Ctrl-C during
start-up (importing click, numpy and the commands takes a few hundred milliseconds) ends
with one line and status 130 instead of a traceback."""

from __future__ import annotations

import sys  # built in: importing this module costs nothing, so Ctrl-C cannot land here

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports it
USAGE_ERROR_EXIT = 2  # leaktrace/exit_codes.py's INPUT_ERROR (not imported: start-up stays small)


def _interrupted() -> None:
    try:
        sys.stderr.write("leaktrace: interrupted\n")
        sys.stderr.flush()
    finally:
        # Nothing more to run, and no interpreter teardown that a second Ctrl-C could break.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(INTERRUPTED_EXIT)


def _ctrl_c_ends_the_teardown() -> None:
    """The command is over: a Ctrl-C during the interpreter's teardown (atexit hooks, the
    threading module's shutdown) ends the process as Ctrl-C ends any program, instead of
    printing a traceback from whichever hook it interrupted."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _caused_by_ctrl_c(error: BaseException) -> bool:
    """Python wraps a KeyboardInterrupt raised while a class is being created (in a
    descriptor's __set_name__, as ipaddress's cached_property) in a RuntimeError."""
    seen = 0
    cause: BaseException | None = error
    while cause is not None and seen < 16:
        if isinstance(cause, KeyboardInterrupt):
            return True
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return False


def _ctrl_c_lost_in_a_callback(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C that lands in a weak reference's callback, a __del__ or an import lock's
    cleanup cannot stop anything there: Python prints it as an "Exception ignored" traceback
    and goes on. Raised again, it lands where it stops the command, in one line."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        import _thread

        # From another thread: called here, Python would raise it at once, in this hook.
        _thread.start_new_thread(_thread.interrupt_main, ())
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    sys.unraisablehook = _ctrl_c_lost_in_a_callback
    # Ctrl-C may land while the CLI's modules are still being imported, or later.
    try:
        from leaktrace.launcher import inherited_fds, inherited_signals

        inherited_fds.remember()  # before any module opens a file of its own
        inherited_signals.remember()
        from leaktrace.cli import main as cli_main

        try:
            cli_main(prog_name="leaktrace")
        finally:
            _ctrl_c_ends_the_teardown()
    except KeyboardInterrupt:
        _interrupted()
    except MemoryError:
        # Outside a command (importing the CLI itself): one line, as every command's errors.
        sys.stderr.write("leaktrace: error: out of memory\n")
        sys.exit(USAGE_ERROR_EXIT)
    except Exception as e:
        if not _caused_by_ctrl_c(e):
            raise
        _interrupted()
