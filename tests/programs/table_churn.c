/* Churns the shim's table of live blocks: two threads share one pool of live blocks (guarded
 * by a mutex) and, in phases, grow it to 150,000 blocks, churn it, shrink it to a few
 * thousand, churn it again and regrow it, each freeing blocks the other made. The table grows,
 * fills with removed slots and is rehashed at the same size, all while both threads use it.
 * At the end the blocks whose size is a multiple of 5 leak (their pointers are dropped), the
 * rest are freed, and the program prints what it leaked: the report must say exactly that. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define POOL_MAX 200000

static void *live[POOL_MAX]; /* guarded by pool_lock, as are sizes and live_count */
static size_t sizes[POOL_MAX];
static size_t live_count;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

struct phase {
    unsigned steps;    /* per thread */
    unsigned alloc_pct; /* chance that a step allocates rather than frees */
};
static const struct phase phases[] = {
    { 100000, 100 }, /* grow to 200,000 blocks... */
    { 300000, 50 },  /* ...churn... */
    { 120000, 10 },  /* ...shrink to a few thousand... */
    { 300000, 50 },  /* ...churn among removed slots... */
    { 60000, 80 },   /* ...and regrow */
};

static __attribute__((noinline)) void *make_block(size_t size)
{
    void *p = malloc(size); /* @leak:churn */
    if (!p) abort();
    ((volatile char *)p)[0] = 1;
    return p;
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void *worker(void *arg)
{
    uint64_t state = (uintptr_t)arg;
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
        for (unsigned step = 0; step < phases[p].steps; step++) {
            uint64_t r = next_random(&state);
            bool allocate = r % 100 < phases[p].alloc_pct;
            size_t size = 8 + (r >> 8) % 120;
            void *fresh = allocate ? make_block(size) : NULL;
            void *doomed = NULL;
            pthread_mutex_lock(&pool_lock);
            if (allocate && live_count < POOL_MAX) {
                live[live_count] = fresh;
                sizes[live_count++] = size;
                fresh = NULL;
            } else if (!allocate && live_count > 0) {
                size_t j = (size_t)(r >> 20) % live_count;
                doomed = live[j];
                live[j] = live[--live_count];
                sizes[j] = sizes[live_count];
                live[live_count] = NULL; /* no stale copy keeps a leak reachable */
            }
            pthread_mutex_unlock(&pool_lock);
            free(fresh); /* the pool was full */
            free(doomed);
        }
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&threads[i], NULL, worker, (void *)(i * 7919 + 1));
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    size_t leaked_blocks = 0, leaked_bytes = 0;
    for (size_t i = 0; i < live_count; i++) {
        if (sizes[i] % 5 == 0) {
            leaked_blocks++;
            leaked_bytes += sizes[i];
        } else {
            free(live[i]);
        }
        live[i] = NULL;
    }
    printf("leaked %zu blocks, %zu bytes\n", leaked_blocks, leaked_bytes);
    return 0;
}
