"""Constants of the capture file format, mirroring shim/capture_format.h (the definition).
docs/capture-format.md describes the layout; tests/test_format_agreement.py checks that these
values agree with the C header."""

MAGIC = b"LEAKTRC\0"
VERSION = 2  # the newest version this leaktrace reads (and the test writer writes)
HEADER_SIZE = 64
POINTER_SIZE = 8

FLAG_FINAL = 1  # written when the process ended (not an on-demand snapshot)
FLAG_CHILD = 2  # written by a child traced with --follow-children

MODULE_FLAG_UNLOADED = 1  # unloaded by dlclose before the capture

# Section tags: each section is {u32 tag, u32 reserved, u64 payload length, payload}.
SECTION_PROCESS = 1
SECTION_MODULES = 2
SECTION_STACKS = 3
SECTION_BLOCKS = 4
SECTION_COUNTERS = 5
SECTION_LEAK_GROUPS = 6  # version 2, present when a reachability scan ran
SECTION_SCAN = 7  # version 2, present when a reachability scan ran
SECTION_SESSION = 8  # optional: baseline and why the capture was taken (capture/series.py)
SECTION_SERIES = 9  # optional: snapshots of per-backtrace totals (capture/series.py)
SECTION_NOTES = 10  # optional: what the shim could not see, as sentences
SECTION_END = 255

SECTION_NAMES: dict[int, str] = {
    SECTION_PROCESS: "PROCESS",
    SECTION_MODULES: "MODULES",
    SECTION_STACKS: "STACKS",
    SECTION_BLOCKS: "BLOCKS",
    SECTION_COUNTERS: "COUNTERS",
    SECTION_LEAK_GROUPS: "LEAK_GROUPS",
    SECTION_SCAN: "SCAN",
    SECTION_SESSION: "SESSION",
    SECTION_SERIES: "SERIES",
    SECTION_NOTES: "NOTES",
    SECTION_END: "END",
}

SECTION_HEADER_SIZE = 16
BLOCK_RECORD_SIZE = 32
# Fixed part of one STACKS entry: u32 stack_id, u32 depth, six u64 totals.
STACK_ENTRY_SIZE = 56
# One LEAK_GROUPS entry: u64 address, u64 indirect bytes, u64 indirect blocks.
LEAK_GROUP_RECORD_SIZE = 24
# The SCAN payload: three u64 then four u32.
SCAN_PAYLOAD_SIZE = 40

# The API that made a block: the "kind" byte of each block record.
BLOCK_KINDS: dict[int, str] = {
    1: "malloc",
    2: "calloc",
    3: "realloc",
    4: "reallocarray",
    5: "memalign",
    6: "posix_memalign",
    7: "aligned_alloc",
    8: "valloc",
    9: "pvalloc",
    10: "mmap",
    11: "mremap",
    12: "brk",
}

# What the reachability scan concluded about a heap block: the "leak_kind" byte (version 2).
LEAK_UNSCANNED = 0
LEAK_DEFINITELY_LOST = 1
LEAK_INDIRECTLY_LOST = 2
LEAK_POSSIBLY_LOST = 3
LEAK_STILL_REACHABLE = 4

LEAK_KINDS: dict[int, str] = {
    LEAK_UNSCANNED: "unscanned",
    LEAK_DEFINITELY_LOST: "definitely lost",
    LEAK_INDIRECTLY_LOST: "indirectly lost",
    LEAK_POSSIBLY_LOST: "possibly lost",
    LEAK_STILL_REACHABLE: "still reachable",
}

# Which valgrind interior-pointer heuristic made a block reachable: the "heuristic" byte.
HEURISTIC_NONE = 0
HEURISTICS: dict[int, str] = {
    HEURISTIC_NONE: "none",
    1: "stdstring",
    2: "length64",
    3: "newarray",
    4: "multipleinheritance",
}

# Block flags: the "flags" byte of each block record.
BLOCK_FLAG_SINCE_BASELINE = 1  # born after the last reset / mtrace() baseline

# Blocks of these kinds are memory mappings, not heap blocks: the scan leaves them alone.
MAPPING_KINDS = frozenset(k for k, name in BLOCK_KINDS.items() if name in ("mmap", "mremap", "brk"))

# Stack id 0 means "no backtrace": unwinding failed or the stack table was full.
NO_STACK_ID = 0


def kind_name(kind: int) -> str:
    """The API name of a block kind; an unknown number stays visible rather than failing."""
    return BLOCK_KINDS.get(kind, f"kind-{kind}")


def leak_kind_name(leak_kind: int) -> str:
    return LEAK_KINDS.get(leak_kind, f"leak-kind-{leak_kind}")


def heuristic_name(heuristic: int) -> str:
    return HEURISTICS.get(heuristic, f"heuristic-{heuristic}")
