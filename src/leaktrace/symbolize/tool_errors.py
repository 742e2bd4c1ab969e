"""The error both external symbolizer back ends raise when they cannot run."""


class SymbolizerToolFailed(Exception):
    """addr2line or llvm-symbolizer could not run or failed; the message says why."""
