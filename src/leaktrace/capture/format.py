"""Constants of the capture file format, mirroring shim/capture_format.h (the definition):
every LT_X there is X here, with the same value. docs/capture-format.md describes the layout;
tests/test_format_agreement.py checks that the two agree, in both directions."""

MAGIC = b"LEAKTRC\0"
VERSION = 2  # the newest version this leaktrace reads (and the test writer writes)
HEADER_SIZE = 64
POINTER_SIZE = 8

FLAG_FINAL = 1  # written when the process ended (not an on-demand snapshot)
FLAG_CHILD = 2  # written by a child traced with --follow-children

# INVALID_FREES: the API of a free of an address never allocated or freed already.
FREE_API_FREE = 1  # free (and a C++ delete the shim did not enter itself, which calls it)
FREE_API_REALLOC = 2
FREE_API_REALLOCARRAY = 3
FREE_API_DELETE = 4  # operator delete, every variant
FREE_API_DELETE_ARRAY = 5  # operator delete[], every variant
# | one of the above: the block was allocated by a function this one does not release
# (valgrind's "Mismatched free() / delete / delete []").
FREE_API_MISMATCHED = 16
FREE_APIS: dict[int, str] = {FREE_API_FREE: "free", FREE_API_REALLOC: "realloc",
                             FREE_API_REALLOCARRAY: "reallocarray",
                             FREE_API_DELETE: "operator delete",
                             FREE_API_DELETE_ARRAY: "operator delete[]"}

FATAL_FLAG_TRUNCATED = 1  # the backtrace was cut at the depth limit
FATAL_FLAG_IN_SHIM = 2  # the signal struck while the thread ran the shim's code
FATAL_FLAG_IN_HANDLER = 4  # ... while it ran a signal handler: the trap fields are set

MODULE_FLAG_UNLOADED = 1  # unloaded by dlclose before the capture

# Block flags: the "flags" byte of each block record.
BLOCK_FLAG_SINCE_BASELINE = 1  # born after the baseline (control reset, mtrace())

# Sizes in bytes of the fixed-size parts.
SECTION_HEADER_SIZE = 16  # u32 tag, u32 reserved, u64 payload length
BLOCK_RECORD_SIZE = 32  # one BLOCKS record
STACK_ENTRY_SIZE = 56  # one STACKS entry before its return addresses: u32 id, u32 depth, 6 u64
LEAK_GROUP_RECORD_SIZE = 24  # one LEAK_GROUPS entry: address, indirect bytes, indirect blocks
SCAN_PAYLOAD_SIZE = 40  # the SCAN payload: three u64 then four u32
SESSION_PAYLOAD_SIZE = 24  # the SESSION payload: u64 baseline, then four u32
SNAPSHOT_HEADER_SIZE = 16  # one SERIES snapshot: u64 time, u32 entries, u32 reserved
SERIES_ENTRY_SIZE = 40  # one SERIES entry: u32 stack id, u32 reserved, four u64
INVALID_FREE_RECORD_SIZE = 24  # one INVALID_FREES entry: u32 stack id, u32 API, two u64
FATAL_PAYLOAD_SIZE = 64  # FATAL before its addresses (docs/capture-format.md)

# Stack id 0 means "no backtrace": unwinding failed, or the stack table was full or out of memory.
NO_STACK_ID = 0

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
SECTION_FATAL = 11  # optional: the fatal signal that ended the program, and where it struck
SECTION_INVALID_FREES = 12  # optional: frees of addresses never allocated or freed already
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
    SECTION_FATAL: "FATAL",
    SECTION_INVALID_FREES: "INVALID_FREES",
    SECTION_END: "END",
}

# The API that made a block: the "kind" byte of each block record.
KIND_MALLOC = 1
KIND_CALLOC = 2
KIND_REALLOC = 3
KIND_REALLOCARRAY = 4
KIND_MEMALIGN = 5
KIND_POSIX_MEMALIGN = 6
KIND_ALIGNED_ALLOC = 7
KIND_VALLOC = 8
KIND_PVALLOC = 9
KIND_MMAP = 10
KIND_MREMAP = 11
KIND_BRK = 12
KIND_MALLOCLIKE = 13  # a custom allocator's block: LEAKTRACE_MALLOCLIKE_BLOCK (annotate.h)
KIND_MEMPOOL = 14  # a block of a custom allocator's pool: LEAKTRACE_MEMPOOL_ALLOC
# A block the C++ runtime allocated for an array new (new[] calls new, often as a tail call,
# so no frame names it): the reports name the exact operator from the stack when they can.
KIND_NEW_ARRAY = 15

BLOCK_KINDS: dict[int, str] = {
    KIND_MALLOC: "malloc",
    KIND_CALLOC: "calloc",
    KIND_REALLOC: "realloc",
    KIND_REALLOCARRAY: "reallocarray",
    KIND_MEMALIGN: "memalign",
    KIND_POSIX_MEMALIGN: "posix_memalign",
    KIND_ALIGNED_ALLOC: "aligned_alloc",
    KIND_VALLOC: "valloc",
    KIND_PVALLOC: "pvalloc",
    KIND_MMAP: "mmap",
    KIND_MREMAP: "mremap",
    KIND_BRK: "brk",
    KIND_MALLOCLIKE: "malloclike",
    KIND_MEMPOOL: "mempool",
    KIND_NEW_ARRAY: "operator new[](unsigned long)",
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
HEURISTIC_STDSTRING = 1
HEURISTIC_LENGTH64 = 2
HEURISTIC_NEWARRAY = 3
HEURISTIC_MULTIPLEINHERITANCE = 4

HEURISTICS: dict[int, str] = {
    HEURISTIC_NONE: "none",
    HEURISTIC_STDSTRING: "stdstring",
    HEURISTIC_LENGTH64: "length64",
    HEURISTIC_NEWARRAY: "newarray",
    HEURISTIC_MULTIPLEINHERITANCE: "multipleinheritance",
}

# Why the shim wrote the capture: the SESSION section's reason.
REASON_EXIT = 1
REASON_REPORT = 2
REASON_SCAN = 3
REASON_MTRACE = 4
REASON_MUNTRACE = 5
REASON_SIGNAL = 6
REASON_DETACH = 7  # `leaktrace detach` (or attach's end): the collection window closed
REASON_EXEC = 8  # the image the process replaced by exec (without fork): its final capture
REASON_SANDBOX = 9  # the program installed a seccomp filter: the final capture, written then
REASON_FILE_LIMIT = 10  # the program set its hard RLIMIT_FSIZE to 0: the final capture, then

# The label of an on-demand capture's file name, <main>.<label>-<n>.lt.
REASON_LABELS: dict[int, str] = {
    REASON_EXIT: "exit",
    REASON_REPORT: "report",
    REASON_SCAN: "scan",
    REASON_MTRACE: "mtrace",
    REASON_MUNTRACE: "muntrace",
    REASON_SIGNAL: "signal",
    REASON_DETACH: "detach",
    REASON_EXEC: "exec",
    REASON_SANDBOX: "sandbox",
    REASON_FILE_LIMIT: "file-limit",
}

# Blocks of these kinds are memory mappings, not heap blocks: the scan leaves them alone.
MAPPING_KINDS = frozenset({KIND_MMAP, KIND_MREMAP, KIND_BRK})


def kind_name(kind: int) -> str:
    """The API name of a block kind; an unknown number stays visible rather than failing."""
    return BLOCK_KINDS.get(kind, f"kind-{kind}")


def leak_kind_name(leak_kind: int) -> str:
    return LEAK_KINDS.get(leak_kind, f"leak-kind-{leak_kind}")


def heuristic_name(heuristic: int) -> str:
    return HEURISTICS.get(heuristic, f"heuristic-{heuristic}")
