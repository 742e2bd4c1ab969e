/* Annotations from a signal handler that interrupts its thread anywhere, inside the shim's
 * annotation table included: a timer signal every 50 us makes a MALLOCLIKE/FREELIKE pair of its
 * own (a request that finds its thread inside the table is dropped and counted, never waits),
 * while the main thread makes ROUNDS pairs and finally leaks LEAKS 48-byte blocks. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <leaktrace/annotate.h>

#include "scrub_stack.h"

#define ROUNDS 300000
#define LEAKS 7

static char *slab, *handler_slab;
static volatile sig_atomic_t handled;

static void on_timer(int sig)
{
    (void)sig;
    void *obj = handler_slab + 64 * (handled % 16);
    LEAKTRACE_MALLOCLIKE_BLOCK(obj, 32, 0, 0);
    LEAKTRACE_FREELIKE_BLOCK(obj, 0);
    handled = handled + 1;
}

static void make_objects(void)
{
    for (int round = 0; round < ROUNDS; round++) {
        void *obj = slab + 64 * (1 + round % 64);
        LEAKTRACE_MALLOCLIKE_BLOCK(obj, 48, 0, 0);
        if (round < ROUNDS - LEAKS) LEAKTRACE_FREELIKE_BLOCK(obj, 0);
    }
}

int main(void)
{
    slab = malloc(64 * 65);
    handler_slab = malloc(64 * 16);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_timer;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = { { 0, 50 }, { 0, 50 } }, off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &every, NULL);
    below(make_objects);
    setitimer(ITIMER_REAL, &off, NULL);
    scrub_stack();
    write(1, handled > 0 ? "done\n" : "no signal\n", handled > 0 ? 5 : 10);
    return 0;
}
