"""Backtraces as the reports show them: symbolized frames and the text of the stable id.

A big capture has a million stacks but only thousands of distinct return addresses (call
sites), so each distinct address is located, symbolized and formatted once; a stack is then
a lookup per address. The Frame objects of one address are shared by every stack through it:
reports never modify frames."""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import chain

import numpy as np

from leaktrace.analyze.module_map import ModuleMap
from leaktrace.analyze.stack_ids import stable_stack_id_of_text
from leaktrace.capture.reader import Capture
from leaktrace.capture.stack_table import StackTable
from leaktrace.model import Frame
from leaktrace.symbolize import Symbolizer


class StackFrames:
    """The frames of the given stacks (ids of the capture's STACKS; others have none)."""

    def __init__(self, capture: Capture, stack_ids: Iterable[int],
                 symbolizer: Symbolizer) -> None:
        self.table = StackTable.from_stacks(capture.stacks)
        wanted = np.unique(np.fromiter(stack_ids, dtype=np.int64))
        rows = self.table.rows_of(wanted)
        self._row_of = dict(zip(wanted[rows >= 0].tolist(), rows[rows >= 0].tolist(),
                                strict=True))
        self._frames_of: dict[int, tuple[Frame, ...]] = {}  # return address -> its frames
        self._part_of: dict[int, str] = {}  # return address -> "module+offset" of the id
        self._symbolize(self._distinct_addresses(rows[rows >= 0]), capture, symbolizer)
        # Plain lists: one numpy call a stack, not three.
        self._starts: list[int] = self.table.starts.tolist()
        self._depths: list[int] = self.table.depths.tolist()
        self._words = np.asarray(self.table.addresses)

    def _distinct_addresses(self, rows: np.ndarray) -> list[int]:
        table = self.table
        if len(rows) == len(table):
            return table.distinct_addresses().tolist()
        addresses = np.asarray(table.addresses)
        pieces = [addresses[s:s + d] for s, d in zip(table.starts[rows].tolist(),
                                                     table.depths[rows].tolist(), strict=True)]
        if not pieces:
            return []
        return np.unique(np.concatenate(pieces).astype(np.uint64)).tolist()

    def _symbolize(self, addresses: list[int], capture: Capture,
                   symbolizer: Symbolizer) -> None:
        modules = ModuleMap(capture.modules)
        # A return address points after the call; the call itself is one byte earlier,
        # which matters when the call is the last instruction of an inlined range.
        place: dict[int, tuple[str, int]] = {}  # address -> (module path, lookup offset)
        for ra in addresses:
            module = modules.find(ra)
            if module is None:
                self._frames_of[ra] = (Frame(address=ra),)
                self._part_of[ra] = f"?+{ra:x}"
            else:
                place[ra] = (module.path, ra - module.load_bias - 1)
        resolved = symbolizer.resolve(set(place.values()))
        for ra, (path, lookup) in place.items():
            frames = resolved[(path, lookup)]
            for frame in frames:
                frame.address = ra
            self._frames_of[ra] = tuple(frames)
            self._part_of[ra] = f"{os.path.basename(path)}+{lookup + 1:x}"

    def _addresses(self, stack_id: int) -> list[int] | None:
        row = self._row_of.get(stack_id)
        if row is None:
            return None
        start = self._starts[row]
        return self._words[start:start + self._depths[row]].tolist()

    def frames_and_id_text(self, stack_id: int) -> tuple[list[Frame], str] | None:
        """The stack's frames, innermost first (inlined frames each on their own), and the
        text its stable id is hashed from; None for a stack the capture does not have."""
        addresses = self._addresses(stack_id)
        if addresses is None:
            return None
        frames = list(chain.from_iterable(map(self._frames_of.__getitem__, addresses)))
        return frames, "|".join(map(self._part_of.__getitem__, addresses))

    def frames(self, stack_id: int) -> list[Frame]:
        found = self.frames_and_id_text(stack_id)
        return found[0] if found is not None else []

    def stable_id(self, kind: str, stack_id: int) -> str:
        found = self.frames_and_id_text(stack_id)
        return stable_stack_id_of_text(kind, found[1] if found is not None else "")
