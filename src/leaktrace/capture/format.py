"""Constants of the capture file format, mirroring shim/capture_format.h (the definition).
docs/capture-format.md describes the layout; tests/test_format_agreement.py checks that these
values agree with the C header."""

MAGIC = b"LEAKTRC\0"
VERSION = 1  # the newest version this leaktrace reads
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
SECTION_END = 255

SECTION_NAMES: dict[int, str] = {
    SECTION_PROCESS: "PROCESS",
    SECTION_MODULES: "MODULES",
    SECTION_STACKS: "STACKS",
    SECTION_BLOCKS: "BLOCKS",
    SECTION_COUNTERS: "COUNTERS",
    SECTION_END: "END",
}

SECTION_HEADER_SIZE = 16
BLOCK_RECORD_SIZE = 32
# Fixed part of one STACKS entry: u32 stack_id, u32 depth, six u64 totals.
STACK_ENTRY_SIZE = 56

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

# Stack id 0 means "no backtrace": unwinding failed or the stack table was full.
NO_STACK_ID = 0


def kind_name(kind: int) -> str:
    """The API name of a block kind; an unknown number stays visible rather than failing."""
    return BLOCK_KINDS.get(kind, f"kind-{kind}")
