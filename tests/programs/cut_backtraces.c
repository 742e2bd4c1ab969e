/* Allocations deeper than the depth limit, from three threads at once: each thread leaks
 * DEEP_LEAKS blocks of 48 bytes 20 to 22 calls below its start (the same three backtraces again
 * and again), and between them makes and frees shallow blocks. Every deep allocation's
 * backtrace is cut at a limit of 8 frames, none of the shallow ones. */
#include <pthread.h>
#include <stdlib.h>

#define THREADS 3
#define DEEP_LEAKS 200

void *volatile sink;

__attribute__((noinline)) static void *descend(int levels)
{
    if (levels == 0) {
        void *leak = malloc(48); /* @leak:deep */
        sink = leak; /* not a tail call either */
        return leak;
    }
    void *p = descend(levels - 1); /* @call:descend */
    sink = p; /* not a tail call */
    return p;
}

__attribute__((noinline)) static void shallow(void)
{
    void *p = malloc(16);
    sink = p;
    free(p);
}

static void *work(void *arg)
{
    (void)arg;
    for (int i = 0; i < DEEP_LEAKS; i++) {
        sink = descend(20 + i % 3);
        shallow();
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, work, NULL);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    return 0;
}
