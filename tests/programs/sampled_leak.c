/* For sampling mode: LEAKS blocks of LEAK_SIZE bytes leak from one site while many more
 * blocks come and go from another (their frees are mostly of blocks never sampled).
 * usage: sampled_leak LEAKS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEAK_SIZE 1000

static void *volatile sink;

__attribute__((noinline)) static void leak_one(void)
{
    void *p = malloc(LEAK_SIZE); /* @leak:sampled */
    memset(p, 1, LEAK_SIZE);
    sink = p;
}

__attribute__((noinline)) static void churn(unsigned i)
{
    void *p = malloc(32 + i % 200);
    sink = p;
    free(p);
}

int main(int argc, char **argv)
{
    unsigned leaks = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
    for (unsigned i = 0; i < leaks; i++) {
        leak_one();
        for (unsigned j = 0; j < 20; j++) churn(i + j);
    }
    sink = NULL;
    printf("leaked %u blocks of %d bytes\n", leaks, LEAK_SIZE);
    return 0;
}
