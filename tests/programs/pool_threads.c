/* Annotations from several threads at once, with a fork in the middle: THREADS threads each
 * carve objects out of a slab of their own with MALLOCLIKE_BLOCK / FREELIKE_BLOCK, keeping up
 * to PEAK alive at a time (the annotation table grows while they run), and each leaks LEAKS
 * objects of its own size (32 + 16 * thread) at the end. Meanwhile the main thread forks a
 * child that makes requests of its own and exits: nothing may deadlock. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <leaktrace/annotate.h>

#include "scrub_stack.h"

#define THREADS 4
#define ROUNDS 20000
#define PEAK 500
#define LEAKS 10

static char *slabs[THREADS];
static pthread_barrier_t started;

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    size_t size = 32 + 16 * (size_t)t;
    char *slab = slabs[t];
    static __thread void *live[PEAK];
    pthread_barrier_wait(&started);
    for (int round = 0; round < ROUNDS; round++) {
        int slot = round % PEAK;
        if (live[slot]) LEAKTRACE_FREELIKE_BLOCK(live[slot], 0);
        live[slot] = slab + (size_t)(slot + 1) * size; /* not at the slab pointer itself */
        LEAKTRACE_MALLOCLIKE_BLOCK(live[slot], size, 0, 0);
    }
    for (int slot = 0; slot < PEAK; slot++)
        if (slot >= LEAKS) LEAKTRACE_FREELIKE_BLOCK(live[slot], 0);
    for (int slot = 0; slot < PEAK; slot++) live[slot] = NULL;
    return NULL;
}

static void run_threads(void)
{
    pthread_t threads[THREADS];
    pthread_barrier_init(&started, NULL, THREADS + 1);
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, (void *)(intptr_t)t);
    pthread_barrier_wait(&started);
    pid_t child = fork();
    if (child == 0) {
        char object[64];
        for (int i = 0; i < 1000; i++) {
            LEAKTRACE_MALLOCLIKE_BLOCK(object, sizeof object, 0, 0);
            LEAKTRACE_FREELIKE_BLOCK(object, 0);
        }
        _exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    if (status != 0) write(1, "child failed\n", 13);
}

int main(void)
{
    for (int t = 0; t < THREADS; t++) slabs[t] = malloc((size_t)(PEAK + 1) * (32 + 16 * THREADS));
    below(run_threads);
    scrub_stack();
    write(1, "done\n", 5);
    return 0;
}
