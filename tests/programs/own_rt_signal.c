/* A program with a handler of its own for SIGRTMAX-1, the real-time signal a scan uses by
 * default: it must keep it, see nothing of the scan's, and get its own signals. Prints its pid
 * and "ready", then on each line read from stdin (a scan may run meanwhile) goes one step:
 * 1. reports what it finds for SIGRTMAX-1 (the default, natively), installs its handler;
 * 2. raises the signal and reports how often its handler ran and whether it is still its.
 * Leaks 48 bytes. Three threads allocate all along. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void *volatile sink;
static volatile sig_atomic_t received;

static void own_handler(int sig)
{
    (void)sig;
    received++;
}

static void *churn(void *arg)
{
    for (;;) {
        void *p = malloc(32);
        sink = p;
        free(p);
        usleep(1000);
    }
    return arg;
}

static void next_line(void)
{
    char line[64];
    if (!fgets(line, sizeof line, stdin)) exit(3);
}

int main(void)
{
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, churn, NULL);
    sink = malloc(48); /* @leak:own_rt */
    sink = NULL;
    printf("%d ready\n", (int)getpid());
    fflush(stdout);
    next_line();
    struct sigaction now;
    sigaction(SIGRTMAX - 1, NULL, &now);
    printf("found %s\n", now.sa_handler == SIG_DFL ? "the default" : "another handler");
    struct sigaction own = { 0 };
    own.sa_handler = own_handler;
    sigaction(SIGRTMAX - 1, &own, NULL);
    puts("installed");
    fflush(stdout);
    next_line();
    raise(SIGRTMAX - 1);
    sigaction(SIGRTMAX - 1, NULL, &now);
    printf("received %d, handler %s\n", (int)received, now.sa_handler == own_handler ? "mine" : "not mine");
    return 0;
}
