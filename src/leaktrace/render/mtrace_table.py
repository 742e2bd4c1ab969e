"""The output of glibc's `mtrace` perl script, reproduced byte for byte: the messages it prints
while reading (frees of unknown blocks, duplicate allocations) and the "Memory not freed:"
table, or "No memory leaks.". Callers are shown as file:line when they could be resolved and
as the logged address otherwise, as the script does."""

from __future__ import annotations

from collections.abc import Callable

from leaktrace.sources.mtrace_callers import parse_caller
from leaktrace.sources.mtrace_log import AnomalyKind, MtraceLog


def c_alternate_hex(value: int, width: int, *, zero_pad: bool) -> str:
    """printf("%#0Nx") / ("%#Nx") as C and perl do it: no "0x" prefix for zero."""
    if value == 0:
        return "0".rjust(width, "0" if zero_pad else " ")
    if zero_pad:
        return "0x" + format(value, "x").rjust(width - 2, "0")
    return format(value, "#x").rjust(width)


def unresolved_location(caller: str) -> str:
    """What the script prints for a caller addr2line could not resolve."""
    parsed = parse_caller(caller)
    return parsed.number_text if parsed else caller


def render_mtrace_table(log: MtraceLog, resolved: Callable[[str], str | None]) -> str:
    """`resolved(caller)` gives "file:line" or None."""

    def location(caller: str) -> str:
        if not caller:
            return ""
        return resolved(caller) or unresolved_location(caller)

    out: list[str] = []
    for anomaly in log.anomalies:
        address = c_alternate_hex(anomaly.address, 18, zero_pad=True)
        if anomaly.kind is AnomalyKind.FREE_UNKNOWN:
            out.append(
                f"- {address} Free {anomaly.line} was never alloc'd {location(anomaly.caller)}"
            )
        elif anomaly.kind is AnomalyKind.REALLOC_UNKNOWN:
            out.append(
                f"- {address} Realloc {anomaly.line} was never alloc'd {location(anomaly.caller)}"
            )
        elif anomaly.kind is AnomalyKind.ALLOC_DUPLICATE:
            # The script prints this line's caller unresolved: keep that quirk.
            out.append(
                f"+ {address} Alloc {anomaly.line} duplicate: "
                f"{location(anomaly.live_caller)} {anomaly.caller}"
            )
        else:
            size = c_alternate_hex(anomaly.live_size, 10, zero_pad=True)
            out.append(
                f"+ {address} Realloc {anomaly.line} duplicate: {size} "
                f"{location(anomaly.live_caller)} {location(anomaly.caller)}"
            )
    lines = [line + "\n" for line in out]

    if not log.live:
        lines.append("No memory leaks.\n")
        return "".join(lines)
    lines.append("\nMemory not freed:\n-----------------\n")
    lines.append(" " * 11 + "Address     Size     Caller\n")
    # perl sorts the addresses as the strings glibc wrote ("%p": 0x and lowercase hex).
    for block in sorted(log.live, key=lambda b: format(b.address, "#x")):
        address = c_alternate_hex(block.address, 18, zero_pad=True)
        size = c_alternate_hex(block.size, 8, zero_pad=False)
        lines.append(f"{address} {size}  at {location(block.caller)}\n")
    return "".join(lines)
