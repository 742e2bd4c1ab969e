"""Text and JSON for `leaktrace mem`: totals, a per-kind grouping, and the mappings sorted by
size with kB columns like `pmap -X`."""

from __future__ import annotations

import json

from leaktrace.procmem.snapshot import KIND_FIELDS, TOTAL_FIELDS, ProcessMemory
from leaktrace.render.sizes import human_size

_LABELS = {
    "Size": "Size",
    "Rss": "Rss",
    "Pss": "Pss",
    "Private_Clean": "Private clean",
    "Private_Dirty": "Private dirty",
    "Shared_Clean": "Shared clean",
    "Shared_Dirty": "Shared dirty",
    "Swap": "Swap",
    "Anonymous": "Anonymous",
}
_MAPPING_COLUMNS = ("Size", "Rss", "Pss", "Private_Dirty", "Swap")


def _kib(value: int) -> str:
    return f"{value // 1024:,}"


def render_memory_text(memory: ProcessMemory, top: int | None = None) -> str:
    lines = [f"pid {memory.pid}: {memory.command}", "", "Totals:"]
    for name in TOTAL_FIELDS:
        if name in memory.totals:
            value = memory.totals[name]
            lines.append(f"  {_LABELS[name]:<14} {human_size(value):>10}  ({_kib(value)} kB)")

    lines += ["", "By kind (kB):"]
    header = f"  {'kind':<6} {'maps':>5}" + "".join(f" {_LABELS[n]:>13}" for n in KIND_FIELDS)
    lines.append(header)
    for group in memory.by_kind():
        lines.append(
            f"  {group.kind:<6} {group.mappings:>5}"
            + "".join(f" {_kib(group.fields[n]):>13}" for n in KIND_FIELDS)
        )

    mappings = sorted(memory.mappings, key=lambda m: (-m.size, m.start))
    shown = mappings if top is None else mappings[:top]
    title = "Mappings, largest first (kB)"
    if len(shown) < len(mappings):
        title += f", {len(shown)} of {len(mappings)}"
    lines += ["", title + ":"]
    lines.append(
        f"  {'Address':>16} {'Perm':<4} {'Kind':<5}"
        + "".join(f" {_LABELS[n]:>13}" for n in _MAPPING_COLUMNS)
        + "  Path"
    )
    for mapping in shown:
        lines.append(
            f"  {mapping.start:016x} {mapping.perms:<4} {mapping.kind:<5}"
            + f" {_kib(mapping.size):>13}"
            + "".join(f" {_kib(mapping.get(n)):>13}" for n in _MAPPING_COLUMNS[1:])
            + f"  {mapping.path}"
        )
    return "\n".join(lines) + "\n"


def render_memory_json(memory: ProcessMemory, top: int | None = None) -> str:
    mappings = sorted(memory.mappings, key=lambda m: (-m.size, m.start))
    if top is not None:
        mappings = mappings[:top]
    document = {
        "pid": memory.pid,
        "command": memory.command,
        "units": "bytes",
        "totals": memory.totals,
        "by_kind": {
            group.kind: {"mappings": group.mappings, **group.fields} for group in memory.by_kind()
        },
        "mappings": [
            {
                "start": f"{m.start:#x}",
                "end": f"{m.end:#x}",
                "perms": m.perms,
                "kind": m.kind,
                "path": m.path,
                "size": m.size,
                "offset": m.offset,
                "inode": m.inode,
                "fields": m.fields,
            }
            for m in mappings
        ],
    }
    return json.dumps(document, indent=2) + "\n"
