/* A leak that grows all run long and a cache that fills early and stops (the HTML report's
 * growth timeline): 16 rounds 25 ms apart; each round leaks 200 bytes from leak_step, and the
 * first four rounds add 1,000 bytes each to the cache. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *volatile sink;
static void *cache[4];

__attribute__((noinline)) static void leak_step(void)
{
    sink = memset(malloc(200), 1, 200); /* @leak:leak_step */
}

__attribute__((noinline)) static void fill_cache(int round)
{
    if (round < 4)
        cache[round] = memset(malloc(1000), 2, 1000); /* @leak:cache */
}

int main(void)
{
    struct timespec pause = {0, 25 * 1000 * 1000};
    for (int round = 0; round < 16; round++) {
        leak_step();
        fill_cache(round);
        nanosleep(&pause, NULL);
    }
    sink = cache[0];
    return 0;
}
