/* A big capture for bench/big_capture.py: STACKS distinct backtraces (a recursion DEPTH levels
 * deep with two call sites per level: leaf number i takes the path of i's bits) and BLOCKS
 * live blocks of 16 bytes at exit, spread evenly over the leaves and leaked.
 * Prints "end <CLOCK_MONOTONIC ns> <CPU ns so far>" just before returning from main, so the
 * caller can time what follows (the shim's exit scan and capture), in wall and CPU time.
 * usage: big_capture STACKS BLOCKS */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#define DEPTH 20

static void *volatile sink;
static unsigned long blocks_each, blocks_extra;

__attribute__((noinline)) static void leaf(unsigned long i)
{
    unsigned long n = blocks_each + (i < blocks_extra);
    for (unsigned long k = 0; k < n; k++) sink = malloc(16);
}

__attribute__((noinline)) static void walk(int level, unsigned long i)
{
    if (level == DEPTH) {
        leaf(i);
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
    unsigned long stacks = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned long blocks = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000000;
    if (stacks == 0 || stacks > (1ul << DEPTH)) return 2;
    blocks_each = blocks / stacks;
    blocks_extra = blocks % stacks;
    for (unsigned long i = 0; i < stacks; i++) walk(0, i);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    unsigned long long cpu_us = (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull +
                                (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    printf("end %llu %llu\n", (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec,
           cpu_us * 1000ull);
    fflush(stdout);
    return 0;
}
