/* Every thread, the main one included, allocates and frees in a tight loop, so a thread
 * stopped at a random moment is most often inside malloc or free: attach must wait for a
 * safe point, never inject there. SIGUSR1 asks it to stop; it exits 0 if every thread saw
 * its own data intact all along, 1 otherwise. Prints "ready" once all threads run. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4

static volatile sig_atomic_t stopping;
static int corrupted;

static void on_usr1(int sig) { (void)sig; stopping = 1; }

static void *storm(void *arg)
{
    unsigned char tag = (unsigned char)(size_t)arg;
    while (!stopping) {
        unsigned char *blocks[16];
        for (int i = 0; i < 16; i++) {
            blocks[i] = malloc(16 + (size_t)i * 24);
            memset(blocks[i], tag, 16);
        }
        for (int i = 0; i < 16; i++) {
            if (blocks[i][15] != tag) __atomic_store_n(&corrupted, 1, __ATOMIC_RELAXED);
            free(blocks[i]);
        }
    }
    return NULL;
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, storm, (void *)(size_t)(i + 1));
    printf("ready\n");
    fflush(stdout);
    storm((void *)(size_t)99);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    return corrupted;
}
