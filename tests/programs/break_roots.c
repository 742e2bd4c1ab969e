/* Memory the program takes from the program break itself (sbrk, brk) holds pointers; the
 * blocks' sizes tell them apart:
 *   40 B: the only pointer kept in memory got with sbrk(): a root, so still reachable
 *   56 B: the only pointer kept in memory got with brk(): still reachable
 *   72 B: the only pointer kept in sbrk'd memory the program then gave back (a negative
 *         sbrk): no longer a root, so definitely lost
 *   24 B: no pointer kept at all: definitely lost
 * malloc goes on working beside the program's own break (glibc's main arena then grows
 * elsewhere). Only write() is used: stdio would leave buffers of its own at exit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scrub_stack.h"

void *volatile sink;

__attribute__((noinline)) static void keep_at(char *where, size_t size)
{
    void *p = malloc(size);
    memcpy(where, &p, sizeof p);
}

__attribute__((noinline)) static void drop(void)
{
    sink = malloc(24); /* @leak:lost */
    sink = NULL;
}

int main(void)
{
    char *own = sbrk(4096);
    if (own == (char *)-1) return 1;
    memset(own, 0, 4096);
    keep_at(own + 256, 40);

    char *more = sbrk(0);
    if (brk(more + 4096) != 0) return 1;
    memset(more, 0, 4096);
    keep_at(more + 512, 56);

    char *last = sbrk(4096);
    if (last == (char *)-1) return 1;
    memset(last, 0, 4096);
    keep_at(last + 64, 72);
    if (sbrk(-4096) == (void *)-1) return 1;

    drop();
    scrub_stack();
    return 0;
}
