/* A thread keeps the only pointer to its block in a local and exits. glibc caches the dead
 * thread's stack for reuse, the stale pointer still on it; valgrind treats that stack as
 * unaddressable, so the block is definitely lost. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) void *worker(void *arg)
{
    (void)arg;
    void *volatile on_stack[4];
    on_stack[0] = malloc(700); /* @leak:dead_stack */
    memset(on_stack[0], 1, 700);
    return NULL;
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    pthread_join(thread, NULL);
    return 0;
}
