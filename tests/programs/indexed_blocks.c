/* Enough live blocks, in more than one region, for the scan to index them by page (scan.c's
 * index_blocks: from 64 blocks on), and pointers that land where the index has to be right:
 *   kept:      300 small blocks, a global array holding their starts: still reachable (many
 *              start in one page)
 *   far:       a 1 MiB block, which glibc maps apart from the heap (a segment of its own),
 *              a global holding its start: still reachable
 *   via_far:   a block whose only pointer lies 3 pages + 8 bytes into `far`: still reachable
 *   interior:  a 64 KiB block whose only pointer, in a global, points 2 pages + 16 bytes in,
 *              a page where no block starts: possibly lost
 *   tail:      an 8000-byte block whose only pointer, in a global, is to its last byte, in the
 *              page where `after_tail` starts: possibly lost
 *   after_tail: the block right after it, a global holding its start: still reachable
 *   lost:      nowhere: definitely lost
 *   owned:     a block only the lost block points to: indirectly lost
 * Nothing else allocates (no stdio). */
#include <stdlib.h>
#include <string.h>

#define KEPT 300
#define PAGE 4096

void *volatile kept[KEPT];
void *volatile far_block;
void *volatile interior_pointer;
void *volatile tail_pointer;
void *volatile after_tail;
void *volatile sink;

__attribute__((noinline)) static void keep_many(void)
{
    for (int i = 0; i < KEPT; i++) kept[i] = malloc(16 + (size_t)(i % 5) * 16); /* @leak:kept */
}

__attribute__((noinline)) static void keep_far(void)
{
    char *block = calloc(1, (size_t)1 << 20); /* @leak:far */
    far_block = block;
    void *p = malloc(40); /* @leak:via_far */
    memcpy(block + 3 * PAGE + 8, &p, sizeof p);
}

__attribute__((noinline)) static void keep_interior(void)
{
    char *block = calloc(1, (size_t)64 << 10); /* @leak:interior */
    interior_pointer = block + 2 * PAGE + 16;
}

__attribute__((noinline)) static void keep_tail(void)
{
    char *block = calloc(1, 8000); /* @leak:tail */
    after_tail = malloc(48); /* @leak:after_tail */
    tail_pointer = block + 7999;
}

__attribute__((noinline)) static void lose(void)
{
    void **block = malloc(64); /* @leak:lost */
    block[0] = malloc(24); /* @leak:owned */
    sink = block;
    sink = NULL;
}

int main(void)
{
    keep_many();
    keep_far();
    keep_interior();
    keep_tail();
    lose();
    return 0;
}
