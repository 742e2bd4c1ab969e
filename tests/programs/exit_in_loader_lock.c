/* A thread of the program holds the dynamic loader's lock for good (its dl_iterate_phdr
 * callback allocates and frees without end) while main leaks one block and returns, or, with
 * an argument, first waits that many seconds for an on-demand scan. Natively the process
 * ends at once: exit does not need that lock. (After LLVM's lsan test libdl_deadlock.) */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t started = PTHREAD_MUTEX_INITIALIZER;
void *volatile sink;

static int churn_forever(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info;
    (void)size;
    (void)data;
    for (int round = 0;; round++) {
        void *blocks[100];
        for (int i = 0; i < 100; i++) blocks[i] = malloc(10 * (size_t)i + 1);
        if (round == 0) pthread_mutex_unlock(&started);
        for (int i = 0; i < 100; i++) free(blocks[i]);
    }
    return 1;
}

static void *hold_the_loader(void *arg)
{
    (void)arg;
    dl_iterate_phdr(churn_forever, NULL);
    return NULL;
}

__attribute__((noinline)) static void leak(void)
{
    sink = malloc(77); /* @leak:loader_locked */
    sink = NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    pthread_mutex_lock(&started);
    pthread_create(&thread, NULL, hold_the_loader, NULL);
    pthread_mutex_lock(&started); /* the callback is running: the loader's lock is held */
    leak();
    if (argc > 1) {
        printf("%d ready\n", getpid());
        fflush(stdout);
        time_t end = time(NULL) + atoi(argv[1]);
        while (time(NULL) < end) sleep(1);
    }
    return 0;
}
