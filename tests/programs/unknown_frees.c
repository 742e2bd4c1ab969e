/* Frees of blocks the tracer never saw, from three threads at once (as after an attach, when
 * most frees are of blocks made before it): each thread frees FREES blocks it got from glibc's
 * own entry point, which the shim does not interpose. argv[1]: FREES (default 300). */
#include <pthread.h>
#include <stdlib.h>

#define THREADS 3

extern void *__libc_malloc(size_t);

static int frees = 300;

static void *work(void *arg)
{
    (void)arg;
    for (int i = 0; i < frees; i++) free(__libc_malloc(32));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) frees = atoi(argv[1]);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, work, NULL);
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    return 0;
}
