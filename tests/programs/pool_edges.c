/* The requests' edge cases (docs/annotations.md), under leaktrace only:
 *   - MEMPOOL_ALLOC naming a pool never created: the pool is created, the 48-byte object kept;
 *   - MALLOCLIKE_BLOCK twice at one address (64, then 80 bytes) without a free: one block, 80;
 *   - FREELIKE_BLOCK of a pool's 96-byte object (not a MALLOCLIKE block): an unknown free, the
 *     object stays;
 *   - MEMPOOL_EXISTS before and after DESTROY_MEMPOOL, and of a pool never named: printed.
 * All three objects are lost: 224 bytes in 3 blocks, definitely lost. The slab is malloc'd. */
#include <stdlib.h>
#include <unistd.h>

#include <leaktrace/annotate.h>

#include "scrub_stack.h"

static char *slab;
static int never_created, destroyed_pool, never_named;
void *volatile sink;

__attribute__((noinline)) static void *carve(size_t offset) { return slab + offset; }

static void make_objects(void)
{
    void *a = carve(16);
    LEAKTRACE_MEMPOOL_ALLOC(&never_created, a, 48); /* @leak:implicit_pool */

    void *b = carve(64);
    LEAKTRACE_MALLOCLIKE_BLOCK(b, 64, 0, 0);
    LEAKTRACE_MALLOCLIKE_BLOCK(b, 80, 0, 0); /* @leak:annotated_twice */

    void *c = carve(160);
    LEAKTRACE_MEMPOOL_ALLOC(&never_created, c, 96); /* @leak:wrong_free */
    LEAKTRACE_FREELIKE_BLOCK(c, 0);

    char answers[5] = "0000\n";
    answers[0] = (char)('0' + LEAKTRACE_MEMPOOL_EXISTS(&never_created));
    LEAKTRACE_CREATE_MEMPOOL(&destroyed_pool, 0, 0);
    answers[1] = (char)('0' + LEAKTRACE_MEMPOOL_EXISTS(&destroyed_pool));
    LEAKTRACE_DESTROY_MEMPOOL(&destroyed_pool);
    answers[2] = (char)('0' + LEAKTRACE_MEMPOOL_EXISTS(&destroyed_pool));
    answers[3] = (char)('0' + LEAKTRACE_MEMPOOL_EXISTS(&never_named));
    write(1, answers, sizeof answers);
    sink = NULL;
}

int main(void)
{
    slab = calloc(1, 4096); /* the objects' superblock: never reported */
    slab += 8;              /* no start pointer to the slab's first object either */
    below(make_objects);
    scrub_stack();
    return 0;
}
