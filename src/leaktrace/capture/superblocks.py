"""valgrind's superblock rule for captures written without a reachability scan: a heap block
that holds blocks of a custom allocator (leaktrace/annotate.h, docs/annotations.md) is the
allocator's slab, not a block of its own. The shim's scan drops such blocks itself; a capture
written without one (LEAKTRACE_SCAN=0, detach, `report --pid`, mtrace checkpoints) lists both,
and the slab's bytes would be counted twice."""

from __future__ import annotations

import numpy as np

from leaktrace.capture import format as fmt

ANNOTATED_KINDS = np.array([fmt.KIND_MALLOCLIKE, fmt.KIND_MEMPOOL], dtype=np.uint8)
_MAPPINGS = np.array(sorted(fmt.MAPPING_KINDS), dtype=np.uint8)


def drop_superblocks(blocks: np.ndarray) -> np.ndarray:
    """The blocks without the heap blocks inside which an annotated block starts."""
    annotated = np.isin(blocks["kind"], ANNOTATED_KINDS)
    if not annotated.any():
        return blocks
    starts = np.sort(blocks["address"][annotated])
    heap = ~annotated & ~np.isin(blocks["kind"], _MAPPINGS)
    first = blocks["address"]
    end = first + np.maximum(blocks["size"], 1)
    holds = np.searchsorted(starts, end, "left") > np.searchsorted(starts, first, "left")
    return blocks[~(heap & holds)]
