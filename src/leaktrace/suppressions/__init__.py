"""Suppressions: known leaks to leave out of reports, in valgrind's or LeakSanitizer's file
format (parser), matched against loss records (matcher) and applied to a report (apply);
--gen-suppressions writes valgrind entries (generate). default.supp, shipped with the package
and on unless --no-default-suppressions, covers what glibc, libstdc++ and ld.so keep until exit
on purpose."""

from __future__ import annotations

import os
from collections.abc import Iterable

from leaktrace.suppressions.entries import LsanSuppression, Suppression, ValgrindSuppression
from leaktrace.suppressions.parser import (
    SuppressionFileError,
    load_suppression_file,
    parse_suppressions,
)

DEFAULT_FILE_NAME = "default.supp"


def default_suppressions() -> list[Suppression]:
    # A plain file next to this module (the package is never zipped: it ships the shim's
    # .so), read without importlib.resources, which is 10-20 ms of every report's start-up.
    path = os.path.join(os.path.dirname(__file__), DEFAULT_FILE_NAME)
    with open(path, encoding="utf-8") as f:
        return parse_suppressions(f.read(), f"<leaktrace>/{DEFAULT_FILE_NAME}")


def load_suppressions(paths: Iterable[str | os.PathLike[str]], *,
                      with_defaults: bool = True) -> list[Suppression]:
    """The user's files in the order given, then the defaults: the user's names show up in
    the report when both match."""
    suppressions: list[Suppression] = []
    for path in paths:
        suppressions += load_suppression_file(path)
    if with_defaults:
        suppressions += default_suppressions()
    return suppressions


__all__ = [
    "LsanSuppression",
    "Suppression",
    "SuppressionFileError",
    "ValgrindSuppression",
    "default_suppressions",
    "load_suppressions",
    "parse_suppressions",
]
