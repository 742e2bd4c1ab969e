/* The reachability scan (scan.c): valgrind memcheck's leak kinds for every live heap block. */
#ifndef LEAKTRACE_SCAN_H
#define LEAKTRACE_SCAN_H

#include <pthread.h>

#include "shim.h"

/* 32 bytes: the scan of 10 M blocks sorts and walks these, so their size is its memory traffic. */
struct lt_scan_block {
    uintptr_t addr;
    uint64_t size;
    uint32_t stack_id;
    uint32_t time_ms;
    uint16_t generation;       /* baseline generation it was born in */
    uint8_t kind;              /* the API (enum lt_block_kind) */
    uint8_t state;             /* marking state, internal */
    uint8_t leak_kind;         /* enum lt_leak_kind */
    uint8_t heuristic;         /* enum lt_heuristic */
    uint8_t owns;              /* leads a clique with members: see cliques[] */
    uint8_t first_word;        /* scan.c's, internal: is its first word a vtable's address? */
};
_Static_assert(sizeof(struct lt_scan_block) == 32, "one scan record is 32 bytes");

/* What a definitely lost block's clique owns (the blocks only it reaches), valid where the
 * block's `owns` is set: few blocks lead one, so these live in their own zero-filled array,
 * indexed like the blocks, of which only the touched pages cost memory. */
struct lt_scan_clique {
    uint64_t indirect_bytes;
    uint64_t indirect_blocks;
};

struct lt_scan {
    unsigned heuristics;       /* in: bit (1 << LT_HEURISTIC_x) enables heuristic x */
    struct lt_scan_block *blocks; /* out: sorted by address */
    struct lt_scan_clique *cliques; /* out: cliques[i] for blocks[i] */
    size_t count, blocks_size, cliques_size;
    uint64_t duration_ns, bytes_scanned, root_bytes;
    uint32_t threads_stopped, threads_not_stopped;
    /* Sampling and attach mode: the heap's blocks without a record (not sampled, or allocated
     * before the attach) that the scan followed, and whether it had to do without them (no
     * memory for their scan records: in attach mode the heaps are then roots). */
    uint64_t unrecorded_blocks;
    bool unrecorded_missed;
};

/* pre: no lock of the shim held by the caller; busy set. scanner_sp: the stack pointer above
 * which the calling thread's stack belongs to the program (the shim's own frames lie below).
 * keep_stopped: leave the other threads parked (at process exit); after that, nothing may
 * wait for a lock a parked thread could hold (the loader's, the module list's). */
int lt_scan_run(struct lt_scan *scan, uintptr_t scanner_sp, bool keep_stopped);
void lt_scan_release(struct lt_scan *scan);
/* Attach mode, before the first scan, on a thread free to call malloc: learns how glibc marks
 * the free chunks it keeps in its thread caches, which a walk of the heap must skip. */
void lt_scan_learn_heap_marks(bool leave_heap_as_found);

/* pymalloc_pools.c: a pool of CPython's small-object allocator at p, its blocks in use. */
#define LT_POOL_OVERHEAD 48u
#define LT_POOL_MAX_BLOCKS ((16384u - LT_POOL_OVERHEAD) / 16u)
struct lt_pool {
    uint32_t size, block_size, carved; /* blocks carved from start + LT_POOL_OVERHEAD on */
    uint8_t free[(LT_POOL_MAX_BLOCKS + 7) / 8]; /* bit i: carved block i is on the free list */
};
bool lt_pymalloc_pool_at(uintptr_t p, uint32_t pool_size, uintptr_t limit, struct lt_pool *out);

#endif
