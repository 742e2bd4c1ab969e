/* Leaks one block, then allocates and frees without a pause until a signal sent to it ends it,
 * as a busy server does when it is stopped: in the main thread (argv[1] "main"), or in two
 * threads while the main thread, which has the signals blocked, waits ("threads"); or in the
 * main thread with a SIGTERM handler that ends the process with _exit(3) ("handler-exit"; the
 * same installed with SA_RESETHAND: "resethand-exit"), or
 * a SIGWINCH one (a signal `leaktrace run` does not pass on: "winch-exit"), or a SIGWINCH one
 * that execs /bin/true ("winch-exec"). The signal then mostly finds its thread inside malloc or
 * free. Prints "ready" once it allocates. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_long calls;

__attribute__((noinline)) static void leak(void)
{
    void *volatile p = malloc(77); /* @leak:busy */
    p = NULL;
    (void)p;
}

static void *allocate_forever(void *arg)
{
    (void)arg;
    void *volatile ring[64] = { 0 };
    for (unsigned i = 0;; i++) {
        free(ring[i % 64]);
        ring[i % 64] = malloc(16 + (i * 40503u) % 2000);
        atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *say_ready_when_allocating(void *arg)
{
    (void)arg;
    while (atomic_load(&calls) < 100000) usleep(1000);
    printf("ready\n");
    fflush(stdout);
    return NULL;
}

static void end_at_once(int sig)
{
    (void)sig;
    _exit(3);
}

static void become_true(int sig)
{
    (void)sig;
    char *const argv[] = { "true", NULL };
    execv("/bin/true", argv);
    _exit(4);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "handler-exit") == 0) signal(SIGTERM, end_at_once);
    if (argc > 1 && strcmp(argv[1], "resethand-exit") == 0) {
        struct sigaction once;
        memset(&once, 0, sizeof once);
        once.sa_handler = end_at_once;
        once.sa_flags = SA_RESETHAND;
        sigaction(SIGTERM, &once, NULL);
    }
    if (argc > 1 && strcmp(argv[1], "winch-exit") == 0) signal(SIGWINCH, end_at_once);
    if (argc > 1 && strcmp(argv[1], "winch-exec") == 0) signal(SIGWINCH, become_true);
    leak();
    if (argc > 1 && strcmp(argv[1], "threads") == 0) {
        pthread_t t;
        for (int i = 0; i < 2; i++) pthread_create(&t, NULL, allocate_forever, NULL);
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL); /* the signal goes to an allocating thread */
        say_ready_when_allocating(NULL);
        for (;;) pause();
    }
    pthread_t t;
    pthread_create(&t, NULL, say_ready_when_allocating, NULL);
    allocate_forever(NULL);
}
