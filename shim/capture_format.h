/* The capture file format, defined once. docs/capture-format.md describes it in prose and
 * src/leaktrace/capture/format.py mirrors it: every LT_X defined here (a #define, or an enum
 * constant made from an X-macro list) is X there, with the same value;
 * tests/test_format_agreement.py checks both directions. All integers are little-endian. */
#ifndef LEAKTRACE_CAPTURE_FORMAT_H
#define LEAKTRACE_CAPTURE_FORMAT_H

#define LT_MAGIC "LEAKTRC"   /* 7 chars + NUL = 8 bytes */
#define LT_VERSION 2 /* the capture format's version. 2: leak kinds in BLOCKS, LEAK_GROUPS, SCAN */
#define LT_HEADER_SIZE 64
#define LT_POINTER_SIZE 8    /* x86-64 only */
_Static_assert(sizeof(void *) == LT_POINTER_SIZE, "leaktrace captures are written on x86-64");

/* Header flags. */
#define LT_FLAG_FINAL 1u     /* written when the process ended (not an on-demand snapshot) */
#define LT_FLAG_CHILD 2u     /* written by a child traced with --follow-children */

/* INVALID_FREES: the API of a free of an address never allocated or freed already, or, with
 * LT_FREE_API_MISMATCHED, of a block that API does not release. */
#define LT_FREE_API_FREE 1          /* free (a C++ delete whose hook the shim did not see too) */
#define LT_FREE_API_REALLOC 2
#define LT_FREE_API_REALLOCARRAY 3
#define LT_FREE_API_DELETE 4        /* operator delete, every variant */
#define LT_FREE_API_DELETE_ARRAY 5  /* operator delete[], every variant */
#define LT_FREE_API_MISMATCHED 16u  /* | one of the above: the block was allocated by a function
                                     * this one does not release (valgrind's "Mismatched free()") */

/* FATAL flags. */
#define LT_FATAL_FLAG_TRUNCATED 1u /* the backtrace was cut at the depth limit */
#define LT_FATAL_FLAG_IN_SHIM 2u   /* the signal struck while the thread ran the shim's code */
#define LT_FATAL_FLAG_IN_HANDLER 4u /* ... while it ran a signal handler: the trap fields are set */

/* MODULES entry flags. */
#define LT_MODULE_FLAG_UNLOADED 1u /* unloaded by dlclose before the capture */

/* Block flags (byte 3 of a block record's reserved bytes). */
#define LT_BLOCK_FLAG_SINCE_BASELINE 1u /* born after the baseline (control reset, mtrace()) */

/* Sizes in bytes of the fixed-size parts. */
#define LT_SECTION_HEADER_SIZE 16   /* u32 tag, u32 reserved, u64 payload length */
#define LT_BLOCK_RECORD_SIZE 32     /* one BLOCKS record */
#define LT_STACK_ENTRY_SIZE 56      /* one STACKS entry before its return addresses */
#define LT_LEAK_GROUP_RECORD_SIZE 24 /* one LEAK_GROUPS entry */
#define LT_SCAN_PAYLOAD_SIZE 40     /* the SCAN payload: three u64, four u32 */
#define LT_SESSION_PAYLOAD_SIZE 24  /* the SESSION payload: u64 baseline, four u32 */
#define LT_SNAPSHOT_HEADER_SIZE 16  /* one SERIES snapshot: u64 time, u32 entries, u32 reserved */
#define LT_SERIES_ENTRY_SIZE 40     /* one SERIES entry: two u32, four u64 */
#define LT_INVALID_FREE_RECORD_SIZE 24 /* one INVALID_FREES entry: two u32, two u64 */
#define LT_FATAL_PAYLOAD_SIZE 64    /* FATAL before its addresses (docs/capture-format.md) */

/* Stack id 0 means "no backtrace": unwinding failed, or the stack table was full or out of memory. */
#define LT_NO_STACK_ID 0

/* Section tags: every section is {u32 tag, u32 reserved, u64 payload_length, payload}. */
#define LT_SECTION_TAGS(X) \
    X(1, PROCESS)          \
    X(2, MODULES)          \
    X(3, STACKS)           \
    X(4, BLOCKS)           \
    X(5, COUNTERS)         \
    X(6, LEAK_GROUPS)      \
    X(7, SCAN)             \
    X(8, SESSION)          \
    X(9, SERIES)           \
    X(10, NOTES)           \
    X(11, FATAL)           \
    X(12, INVALID_FREES)   \
    X(255, END)

/* Which API made a block: the "kind" byte of each block. */
#define LT_BLOCK_KINDS(X)                 \
    X(1, MALLOC, "malloc")                \
    X(2, CALLOC, "calloc")                \
    X(3, REALLOC, "realloc")              \
    X(4, REALLOCARRAY, "reallocarray")    \
    X(5, MEMALIGN, "memalign")            \
    X(6, POSIX_MEMALIGN, "posix_memalign")\
    X(7, ALIGNED_ALLOC, "aligned_alloc")  \
    X(8, VALLOC, "valloc")                \
    X(9, PVALLOC, "pvalloc")              \
    X(10, MMAP, "mmap")                   \
    X(11, MREMAP, "mremap")               \
    X(12, BRK, "brk")                     \
    X(13, MALLOCLIKE, "malloclike")       \
    X(14, MEMPOOL, "mempool")             \
    X(15, NEW_ARRAY, "operator new[](unsigned long)")

/* What a reachability scan concluded about a heap block (byte 0 of a block record's reserved
 * bytes), in valgrind memcheck's terms. 0 means no scan ran. */
#define LT_LEAK_KINDS(X)                              \
    X(0, UNSCANNED, "unscanned")                      \
    X(1, DEFINITELY_LOST, "definitely lost")          \
    X(2, INDIRECTLY_LOST, "indirectly lost")          \
    X(3, POSSIBLY_LOST, "possibly lost")              \
    X(4, STILL_REACHABLE, "still reachable")

/* Which valgrind interior-pointer heuristic made a block reachable (byte 1). */
#define LT_HEURISTICS(X)                                  \
    X(0, NONE, "none")                                    \
    X(1, STDSTRING, "stdstring")                          \
    X(2, LENGTH64, "length64")                            \
    X(3, NEWARRAY, "newarray")                            \
    X(4, MULTIPLEINHERITANCE, "multipleinheritance")

/* Why the shim wrote a capture: the SESSION section's reason. The text is the label in an
 * on-demand capture's file name, <main>.<label>-<n>.lt (exit, signal and detach captures are
 * final and have the main name). An exec capture is the final one of an image the process
 * replaced by exec (flagged final), named <main>.exec-<n>.lt. */
#define LT_CAPTURE_REASONS(X)         \
    X(1, EXIT, "exit")                \
    X(2, REPORT, "report")            \
    X(3, SCAN, "scan")                \
    X(4, MTRACE, "mtrace")            \
    X(5, MUNTRACE, "muntrace")        \
    X(6, SIGNAL, "signal")            \
    X(7, DETACH, "detach")            \
    X(8, EXEC, "exec")                \
    X(9, SANDBOX, "sandbox")          \
    X(10, FILE_LIMIT, "file-limit")

enum lt_leak_kind {
#define LT_X(num, name, text) LT_LEAK_##name = num,
    LT_LEAK_KINDS(LT_X)
#undef LT_X
};

enum lt_heuristic {
#define LT_X(num, name, text) LT_HEURISTIC_##name = num,
    LT_HEURISTICS(LT_X)
#undef LT_X
};

enum lt_section_tag {
#define LT_X(num, name) LT_SECTION_##name = num,
    LT_SECTION_TAGS(LT_X)
#undef LT_X
};

enum lt_block_kind {
#define LT_X(num, name, text) LT_KIND_##name = num,
    LT_BLOCK_KINDS(LT_X)
#undef LT_X
};

enum lt_capture_reason {
#define LT_X(num, name, text) LT_REASON_##name = num,
    LT_CAPTURE_REASONS(LT_X)
#undef LT_X
};

#endif
