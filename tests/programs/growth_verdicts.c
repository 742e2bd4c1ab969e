/* The three growth verdicts on one timeline (the HTML report's test): 16 rounds 25 ms apart;
 * leak_step leaks 200 bytes every round (growing), fill_cache adds 1,000 bytes in each of the
 * first four rounds only (plateaued), and swap_buffer replaces its one 300-byte buffer every
 * round, freed before the end (memory that comes and goes: stable). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *volatile sink;
static void *cache[4];
static void *buffer;

__attribute__((noinline)) static void leak_step(void)
{
    sink = memset(malloc(200), 1, 200);
}

__attribute__((noinline)) static void fill_cache(int round)
{
    if (round < 4)
        cache[round] = memset(malloc(1000), 2, 1000);
}

__attribute__((noinline)) static void swap_buffer(void)
{
    void *next = memset(malloc(300), 3, 300);
    free(buffer);
    buffer = next;
}

int main(void)
{
    struct timespec pause = {0, 25 * 1000 * 1000};
    for (int round = 0; round < 16; round++) {
        swap_buffer();
        leak_step();
        fill_cache(round);
        nanosleep(&pause, NULL);
    }
    free(buffer);
    buffer = NULL;
    sink = cache[0];
    return 0;
}
