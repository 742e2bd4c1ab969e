/* For sampling mode's realloc: each round a block grows from 16 to 1000 bytes through two
 * reallocs and leaks, and another grows and is freed. usage: sampled_realloc ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

__attribute__((noinline)) static void leak_grown(void)
{
    char *p = malloc(16);
    memset(p, 1, 16);
    p = realloc(p, 500);
    p = realloc(p, 1000); /* @leak:grown */
    memset(p, 2, 1000);
    sink = p;
}

__attribute__((noinline)) static void churn(unsigned i)
{
    char *p = realloc(NULL, 32 + i % 100);
    sink = p;
    p = realloc(p, 200 + i % 300);
    sink = p;
    free(p);
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
    for (unsigned i = 0; i < rounds; i++) {
        leak_grown();
        for (unsigned j = 0; j < 10; j++) churn(i + j);
    }
    sink = NULL;
    printf("%u blocks grown and leaked\n", rounds);
    return 0;
}
