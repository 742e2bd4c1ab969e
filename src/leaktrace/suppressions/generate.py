"""--gen-suppressions: a valgrind suppression entry that matches one loss record, written the
way `valgrind --gen-suppressions=all` writes it, so it can go straight into a file for
`leaktrace --suppressions` (and for valgrind itself).

Like valgrind, C++ functions are written by their symbol (`fun:_ZN3app4makeEi`); a function
inlined into another has no symbol and is written by its short name, as valgrind names it from
the debug info (`fun:make`; template arguments as `<*>`), a frame without a function name
by its object (`obj:/usr/lib/libfoo.so`), and a frame in no known object as `obj:*`. The
stack stops at main: valgrind does not show the frames below it (in a stripped program, at
`(below main)`, its name for the C library's caller of main). The allocation function heads
the stack, as valgrind's replacement does: C++'s operators by their symbols (`fun:_Znam`); in a
capture older than the shim's telling new[] apart (its backtrace shows new for both),
`fun:_Zn?m`, which matches either, in both tools."""

from __future__ import annotations

from leaktrace.leak_kinds import SHORT_NAME_OF
from leaktrace.model import Frame, InvalidFree, LeakRecord
from leaktrace.suppressions.linkage_names import LinkageNames
from leaktrace.suppressions.matcher import (
    BELOW_MAIN,
    BELOW_MAIN_NAME,
    allocation_stack,
    inlined_pattern,
)
from leaktrace.symbolize.names import OPERATOR_NEW_SYMBOLS

PLACEHOLDER_NAME = "<insert_a_suppression_name_here>"



def suppression_entry(record: LeakRecord, linkage_names: LinkageNames,
                      name: str = PLACEHOLDER_NAME) -> str | None:
    """The entry's text, or None for a record without a backtrace: its stack would be the
    allocation function alone, which would suppress every leak made by it."""
    if not record.frames:
        return None
    lines = ["{", f"   {name}", "   Memcheck:Leak"]
    if record.leak_kind in SHORT_NAME_OF:
        lines.append(f"   match-leak-kinds: {SHORT_NAME_OF[record.leak_kind]}")
    for i, frame in enumerate(down_to_main(allocation_stack(record))):
        line = _frame_line(frame, linkage_names)
        if i == 0 and frame.function in OPERATOR_NEW_SYMBOLS and not frame.module:
            line = f"fun:{OPERATOR_NEW_SYMBOLS[frame.function]}"  # the API, named by the record
        elif i == 0 and line.startswith("fun:_Znw"):
            # libstdc++'s new[] calls new, often as a tail call: a backtrace shows new for
            # both, where valgrind writes new[]'s own symbol. `?` matches either, in both.
            line = "fun:_Zn?" + line[len("fun:_Znw"):]
        lines.append(f"   {line}")
    lines.append("}")
    return "\n".join(lines)


def free_suppression_entry(invalid: InvalidFree, linkage_names: LinkageNames,
                           name: str = PLACEHOLDER_NAME) -> str | None:
    """A Memcheck:Free entry for an invalid free: the API, then its callers down to main
    (None without a backtrace: it would match every invalid call of the API)."""
    if not invalid.frames:
        return None
    stack = down_to_main([Frame(address=0, function=invalid.api), *invalid.frames])
    # valgrind names a delete by the variant's symbol, which the capture does not keep.
    head = {"operator delete": "_ZdlPv*", "operator delete[]": "_ZdaPv*"}.get(invalid.api,
                                                                            invalid.api)
    lines = ["{", f"   {name}", "   Memcheck:Free", f"   fun:{head}",
             *(f"   {_frame_line(frame, linkage_names)}" for frame in stack[1:]), "}"]
    return "\n".join(lines)


def down_to_main(stack: list[Frame]) -> list[Frame]:
    """Down to main, as valgrind shows stacks; in a program whose main has no name (a
    stripped binary), down to the C library's caller of main, which valgrind calls
    `(below main)`."""
    for i, frame in enumerate(stack):
        if frame.function == "main":
            return stack[: i + 1]
        if frame.function in BELOW_MAIN:
            return [*stack[:i], Frame(address=frame.address, function=BELOW_MAIN_NAME)]
    return stack


def _frame_line(frame: Frame, linkage_names: LinkageNames) -> str:
    if frame.function == BELOW_MAIN_NAME:
        return f"fun:{BELOW_MAIN_NAME}"
    if frame.function and frame.inlined:
        return f"fun:{inlined_pattern(frame.function)}"
    if frame.function:
        symbol = linkage_names.of(frame)
        # Only a C++ symbol says more than the name shown; a C symbol may carry a GCC clone
        # suffix (".constprop.0") that the name leaktrace matches against has not.
        if symbol and symbol.startswith("_Z"):
            return f"fun:{symbol}"
        return f"fun:{frame.function}"
    if frame.module:
        return f"obj:{frame.module}"
    return "obj:*"
