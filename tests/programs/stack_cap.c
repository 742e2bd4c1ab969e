/* More distinct backtraces than the shim's stack table holds (1,048,575): leaf number i is
 * reached through a 21-level recursion whose call sites spell i's bits, and leaks one
 * 13-byte block. The allocations past the cap must still be recorded (as "no backtrace")
 * and counted, and the program must end normally.
 * usage: stack_cap LEAVES */
#include <stdio.h>
#include <stdlib.h>

#define DEPTH 21

static void *volatile sink;

__attribute__((noinline)) static void leaf(void) { sink = malloc(13); } /* @leak:cap */

__attribute__((noinline)) static void walk(int level, unsigned long i)
{
    if (level == DEPTH) {
        leaf();
    } else if (i >> level & 1) {
        walk(level + 1, i);
        sink = (void *)1; /* keeps the two calls (and their return addresses) apart */
    } else {
        walk(level + 1, i);
        sink = (void *)2;
    }
}

int main(int argc, char **argv)
{
    unsigned long leaves = argc > 1 ? strtoul(argv[1], NULL, 10) : 1100000;
    if (leaves > (1ul << DEPTH)) return 2;
    for (unsigned long i = 0; i < leaves; i++) walk(0, i);
    printf("leaked %lu\n", leaves);
    return 0;
}
