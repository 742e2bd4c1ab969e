/* Leaks for the export, diff, merge and HTML tests. With N = argv[1] (default 3):
 *   leak_small: N blocks of 24 bytes (malloc), definitely lost;
 *   leak_big: 2 blocks of 1000 bytes (calloc), definitely lost;
 *   keep_names: N blocks of 16 bytes from copy_name, inlined into it, definitely lost.
 * Plus 64 bytes still reachable from a global (kept_config). */
#include <stdlib.h>
#include <string.h>

#include "scrub_stack.h"

void *volatile sink;
void *volatile kept_config;
static int count = 3;

static inline __attribute__((always_inline)) char *copy_name(void)
{
    char *p = malloc(16); /* @leak:copy_name */
    memset(p, 'n', 16);
    return p;
}

__attribute__((noinline)) static void keep_names(void)
{
    for (int i = 0; i < count; i++)
        sink = copy_name(); /* @call:keep_names */
}

__attribute__((noinline)) static void leak_small(void)
{
    for (int i = 0; i < count; i++)
        sink = memset(malloc(24), 0, 24); /* @leak:small */
}

__attribute__((noinline)) static void leak_big(void)
{
    for (int i = 0; i < 2; i++)
        sink = calloc(1000, 1); /* @leak:big */
}

__attribute__((noinline)) static void make_leaks(void)
{
    leak_small();
    leak_big();
    keep_names();
    kept_config = memset(malloc(64), 'c', 64);
    sink = NULL;
}

int main(int argc, char **argv)
{
#ifdef SHIFT_CODE
    /* The diff test's "rebuilt binary": 4 KiB of no-ops in main, laid out before the leaking
     * functions, so all their addresses move. */
    __asm__ volatile(".skip 4096, 0x90");
#endif
    if (argc > 1)
        count = atoi(argv[1]);
    below(make_leaks);
    scrub_stack();
    return 0;
}
