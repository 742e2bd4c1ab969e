/* CPython's small-object allocator (pymalloc) inside the memory the scan takes for roots.
 * CPython maps arenas of 1 MiB (256 KiB before 3.10) and cuts them into pools of 16 KiB (4 KiB
 * before 3.10), each serving one block size; a freed object stays in its pool with its old
 * contents, a bytearray's or a list's buffer address among them. glibc hands that buffer's
 * address to the next block of its size, often one the program then leaks: scanned as a root,
 * the freed object kept it "still reachable" (leaktrace.track() and the pytest plugin missed
 * most leaks of a few KiB: helper-34). valgrind escapes this only because its allocator keeps
 * freed addresses out of use for a while.
 *
 * A pool is known by its header, checked against pymalloc's invariants (which random data, or
 * any other structure, does not meet by chance): its size class, the end of its carved part,
 * and its free list, each entry a block of the pool, visited once, whose length with the
 * pool's count of blocks in use gives exactly the blocks carved. Then only the blocks in use
 * are roots: the free ones and the part never carved are not. A header that fails any check
 * (another Python's layout, a pool being changed by a thread stopped mid-way) leaves the memory
 * a root, as before. The header layout is the same from CPython 3.8 to 3.13. */
#include <string.h>

#include "scan.h"

struct pool_header {
    uint32_t count;              /* blocks in use (a union with a pointer: padded to 8) */
    uint32_t padding;
    uintptr_t freeblock;         /* the free list's head, NULL when none */
    uintptr_t nextpool, prevpool;
    uint32_t arenaindex, szidx;  /* the block size is (szidx + 1) * 16 */
    uint32_t nextoffset;         /* where the next block would be carved */
    uint32_t maxnextoffset;      /* pool size - block size */
};
#define POOL_OVERHEAD LT_POOL_OVERHEAD /* the header, rounded up to the 16-byte alignment */
_Static_assert(sizeof(struct pool_header) == LT_POOL_OVERHEAD, "pymalloc's pool header");
#define SIZE_CLASSES 32u         /* up to 512 bytes, 16 apart */

/* pre: [p, p + pool_size) lies in readable memory, up to `limit` (exclusive). */
bool lt_pymalloc_pool_at(uintptr_t p, uint32_t pool_size, uintptr_t limit, struct lt_pool *out)
{
    if (p + pool_size > limit) return false;
    const struct pool_header *h = (const struct pool_header *)p;
    if (h->szidx >= SIZE_CLASSES) return false;
    uint32_t size = (h->szidx + 1) * 16;
    if (h->maxnextoffset != pool_size - size) return false;
    if (h->nextoffset < POOL_OVERHEAD + size || h->nextoffset > pool_size ||
        (h->nextoffset - POOL_OVERHEAD) % size != 0)
        return false;
    uint32_t carved = (h->nextoffset - POOL_OVERHEAD) / size;
    if (h->count > carved || carved > LT_POOL_MAX_BLOCKS) return false;
    memset(out->free, 0, (carved + 7) / 8);
    uint32_t nfree = 0;
    for (uintptr_t b = h->freeblock; b != 0; b = *(const uintptr_t *)b) {
        if (b < p + POOL_OVERHEAD || b >= p + h->nextoffset || (b - p - POOL_OVERHEAD) % size != 0)
            return false;
        uint32_t i = (uint32_t)((b - p - POOL_OVERHEAD) / size);
        if (out->free[i / 8] & (1u << (i % 8))) return false; /* a cycle */
        out->free[i / 8] |= (uint8_t)(1u << (i % 8));
        if (++nfree > carved) return false;
    }
    if (h->count + nfree != carved) return false;
    out->size = pool_size;
    out->block_size = size;
    out->carved = carved;
    return true;
}
