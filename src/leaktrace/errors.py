"""The one exception type the command line turns into `leaktrace: error: ...` (exit 2, or
the error's own code: exit_codes)."""


class LeaktraceError(Exception):
    """A problem the user can act on; its message is one line, shown without a traceback.
    `exit_code`: what leaktrace ends with (2, unless a convention says otherwise: exit_codes)."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
