/* The main thread ends with pthread_exit while a worker goes on; the process then ends with
 * the worker: when it returns, as the last thread (glibc calls exit(0)), or by calling exit
 * itself (argv[1] "exit"). Leaks 77 bytes in main and 123 in the worker, keeps 55 bytes in a
 * global (still reachable). argv[1] "serve": the worker says "ready" and leaks 64 bytes every
 * 10 ms until it is killed (to attach to). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;
void *kept;

static void *serve(void *arg)
{
    usleep(50000);
    puts("ready");
    fflush(stdout);
    for (;;) {
        sink = malloc(64); /* @leak:serve */
        usleep(10000);
    }
    return arg;
}

static void *worker(void *calls_exit)
{
    usleep(50000); /* main has ended by now */
    sink = malloc(123); /* @leak:worker */
    sink = NULL;
    kept = malloc(55); /* @leak:kept */
    puts("worker done");
    fflush(stdout);
    if (calls_exit) exit(0);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    if (argc > 1 && !strcmp(argv[1], "serve")) pthread_create(&thread, NULL, serve, NULL);
    else pthread_create(&thread, NULL, worker, argc > 1 && !strcmp(argv[1], "exit") ? (void *)1 : NULL);
    sink = malloc(77); /* @leak:main */
    sink = NULL;
    puts("main ends");
    fflush(stdout);
    pthread_exit(NULL);
}
