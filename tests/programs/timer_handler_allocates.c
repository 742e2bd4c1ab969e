/* A POSIX timer whose SIGRTMIN handler allocates (not async-signal-safe, and yet fine natively:
 * the main loop never allocates while the timer runs). An attach's injected dlopen allocates
 * on the main thread: the handler must not run inside it (heap corruption: "malloc assertion
 * failure in sysmalloc"), and a steady stream of signals must not keep the thread from
 * stopping (attach looped for minutes). argv[1]: the timer's period in nanoseconds. SIGTERM
 * ends it with status 5. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *volatile kept[1 << 16];
static volatile sig_atomic_t ticks, stop;

static void on_tick(int sig)
{
    (void)sig;
    kept[ticks & ((1 << 16) - 1)] = malloc(40);
    ticks = ticks + 1;
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    signal(SIGTERM, on_term);
    timer_t timer;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    timer_create(CLOCK_MONOTONIC, &ev, &timer);
    long period = atol(argv[1]);
    struct itimerspec its = { { 0, period }, { 0, period } };
    printf("ready\n"); /* before the timer: stdout's buffer is allocated here */
    timer_settime(timer, 0, &its, NULL);
    while (!stop) {
        struct timespec pause = { 0, 100000 };
        nanosleep(&pause, NULL);
    }
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, NULL);
    printf("done\n");
    return 5;
}
