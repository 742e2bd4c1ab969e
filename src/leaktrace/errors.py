"""The one exception type the command line turns into `leaktrace: error: ...` (exit 2)."""


class LeaktraceError(Exception):
    """A problem the user can act on; its message is one line, shown without a traceback."""
