"""One process's memory, read once: totals (from smaps_rollup) and every mapping (smaps)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from leaktrace.errors import LeaktraceError
from leaktrace.procmem.smaps import (
    KINDS,
    Mapping,
    parse_rollup,
    parse_smaps,
    read_proc_file,
)

# The totals `leaktrace mem` shows, in this order; "Size" is the sum of mapping sizes
# (smaps_rollup has no Size line).
TOTAL_FIELDS = (
    "Size",
    "Rss",
    "Pss",
    "Private_Clean",
    "Private_Dirty",
    "Shared_Clean",
    "Shared_Dirty",
    "Swap",
    "Anonymous",
)
KIND_FIELDS = ("Size", "Rss", "Pss", "Private_Dirty", "Swap")


@dataclass
class KindGroup:
    kind: str
    mappings: int
    fields: dict[str, int]


@dataclass
class ProcessMemory:
    pid: int
    command: str
    totals: dict[str, int]  # bytes, by smaps field name
    mappings: list[Mapping]

    def by_kind(self) -> list[KindGroup]:
        groups = {kind: KindGroup(kind, 0, dict.fromkeys(KIND_FIELDS, 0)) for kind in KINDS}
        for mapping in self.mappings:
            group = groups[mapping.kind]
            group.mappings += 1
            group.fields["Size"] += mapping.size
            for name in KIND_FIELDS[1:]:
                group.fields[name] += mapping.get(name)
        return sorted(
            (g for g in groups.values() if g.mappings),
            key=lambda g: -g.fields["Size"],
        )


def display_command(arguments: list[str]) -> str:
    """A command line on one line: shell quoting, and newlines (python -c scripts) escaped."""
    return shlex.join(arguments).replace("\n", "\\n")


def command_line(pid: int) -> str:
    raw = read_proc_file(pid, "cmdline")
    if raw:
        return display_command(raw.rstrip("\0").split("\0"))
    return f"[{read_proc_file(pid, 'comm').strip()}]"  # kernel threads have no command line


def read_process_memory(pid: int) -> ProcessMemory:
    command = command_line(pid)
    mappings = parse_smaps(read_proc_file(pid, "smaps"))
    try:
        totals = parse_rollup(read_proc_file(pid, "smaps_rollup"))
    except LeaktraceError:  # smaps_rollup is Linux 4.14+: add the mappings up instead
        totals = {}
        for mapping in mappings:
            for name, value in mapping.fields.items():
                totals[name] = totals.get(name, 0) + value
        totals.pop("KernelPageSize", None)
        totals.pop("MMUPageSize", None)
    totals["Size"] = sum(m.size for m in mappings)
    return ProcessMemory(pid, command, totals, mappings)
