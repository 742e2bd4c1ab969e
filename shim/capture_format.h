/* The capture file format, defined once. docs/capture-format.md describes it in prose and
 * src/leaktrace/capture/format.py mirrors it; tests/test_format_agreement.py checks that the
 * Python mirror agrees with this header. All integers are little-endian. */
#ifndef LEAKTRACE_CAPTURE_FORMAT_H
#define LEAKTRACE_CAPTURE_FORMAT_H

#define LT_CAPTURE_MAGIC "LEAKTRC"   /* 7 chars + NUL = 8 bytes */
#define LT_CAPTURE_VERSION 1
#define LT_CAPTURE_HEADER_SIZE 64

/* Header flags. */
#define LT_FLAG_FINAL 1u     /* written when the process ended (not an on-demand snapshot) */
#define LT_FLAG_CHILD 2u     /* written by a child traced with --follow-children */

/* Section tags: every section is {u32 tag, u32 reserved, u64 payload_length, payload}. */
#define LT_SECTION_TAGS(X) \
    X(1, PROCESS)          \
    X(2, MODULES)          \
    X(3, STACKS)           \
    X(4, BLOCKS)           \
    X(5, COUNTERS)         \
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
    X(12, BRK, "brk")

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

/* Size in bytes of one record of the BLOCKS section. */
#define LT_BLOCK_RECORD_SIZE 32

#endif
