/* A leak made in a thread: 5 blocks of 64 bytes, from worker(). */
#include <pthread.h>
#include <stdlib.h>

void *volatile sink;

__attribute__((noinline)) static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) sink = malloc(64); /* @leak:thread */
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return 0;
}
