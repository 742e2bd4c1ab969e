/* Twelve threads (more than the shim's stripes of per-stack totals) allocate through the same
 * backtrace at once: each makes 3,000 blocks of 32 bytes at the marked line and frees two in three, so
 * 12,000 blocks stay reachable from `kept`. Their totals must add up exactly. */
#include <pthread.h>
#include <stdlib.h>

#define THREADS 12
#define BLOCKS 3000

static void *kept[THREADS][BLOCKS];
static pthread_barrier_t start;

__attribute__((noinline)) static void churn(void **mine)
{
    for (int i = 0; i < BLOCKS; i++) mine[i] = malloc(32); /* @leak:keep */
    for (int i = 0; i < BLOCKS; i++)
        if (i % 3) {
            free(mine[i]);
            mine[i] = NULL;
        }
}

static void *worker(void *arg)
{
    pthread_barrier_wait(&start); /* all at once, so they meet on the same totals */
    churn(arg);
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, kept[t]);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    return 0;
}
