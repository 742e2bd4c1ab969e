"""Find which module (executable or shared library) a runtime address belongs to."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from leaktrace.capture.reader import Module


class ModuleMap:
    """Lookup over the MODULES section's [start, end) ranges. A library unloaded by dlclose
    still counts (blocks it allocated may outlive it); if a later module was mapped over the
    same addresses, the one still loaded at capture time wins (the rest is ambiguous)."""

    def __init__(self, modules: Iterable[Module]) -> None:
        self._modules = sorted(modules, key=lambda m: m.start)
        self._starts = [m.start for m in self._modules]
        # Highest end among modules[0..i]: lets find() stop walking back early.
        self._max_end: list[int] = []
        for m in self._modules:
            self._max_end.append(max(m.end, self._max_end[-1] if self._max_end else 0))

    def find(self, address: int) -> Module | None:
        i = bisect.bisect_right(self._starts, address) - 1
        covering: list[Module] = []
        while i >= 0 and self._max_end[i] > address:
            if self._modules[i].contains(address):
                covering.append(self._modules[i])
            i -= 1
        if not covering:
            return None
        loaded = [m for m in covering if not m.unloaded]
        # covering runs from the latest start back; for unloaded ones that is the latest map.
        return loaded[0] if loaded else covering[0]
