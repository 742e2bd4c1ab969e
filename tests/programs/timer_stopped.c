/* A timer's signal every 50 us while the main thread allocates and frees without a pause, so
 * most of them find it inside malloc or free; then the timer is stopped, twenty times. Natively
 * no handler runs after setitimer() has stopped the timer. Prints whether the handler ran
 * while the timer did, and how many times it ran after it was stopped. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t stopped, before, after;

static void on_timer(int sig)
{
    (void)sig;
    if (stopped) after = after + 1;
    else before = before + 1;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = { { 0, 50 }, { 0, 50 } }, off = { { 0, 0 }, { 0, 0 } };
    for (int round = 0; round < 20; round++) {
        stopped = 0;
        setitimer(ITIMER_REAL, &every, NULL);
        void *volatile ring[16] = { 0 };
        for (unsigned i = 0; i < 20000; i++) {
            free(ring[i % 16]);
            ring[i % 16] = malloc(16 + i % 512);
        }
        setitimer(ITIMER_REAL, &off, NULL);
        stopped = 1;
        for (int i = 0; i < 16; i++) free(ring[i]);
        struct timespec ms = { 0, 2000000 };
        nanosleep(&ms, NULL); /* a late retry would come now */
    }
    printf("%s %d\n", before > 0 ? "handled" : "never handled", (int)after);
    return 0;
}
