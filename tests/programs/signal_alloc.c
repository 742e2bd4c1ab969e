/* A SIGALRM handler that allocates while the main thread loops malloc/free: the signal often
 * lands while the main thread is inside the shim (inside free, holding a table lock).
 * Each handler run keeps one HANDLER_SIZE block (reachable from `kept`) and allocates and frees
 * another; after TARGET runs the timer stops. Prints "handler blocks: N".
 *
 * glibc's malloc is not async-signal-safe, so the program keeps it sound natively: the main
 * loop's two sizes are always served from (and returned to) their own tcache bins, which take
 * no lock and which the handler's sizes never touch, and every size is warmed up before the
 * timer starts. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define TARGET 1500
#define HANDLER_SIZE 1237 /* a size nothing else here uses */
#define MAIN_SIZE_A 200
#define MAIN_SIZE_B 300

static void *volatile kept[TARGET];
static volatile sig_atomic_t handled;
static volatile unsigned long sink;

static void stop_timer(void)
{
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
}

static void on_alarm(int sig)
{
    (void)sig;
    if (handled >= TARGET) return;
    void *scratch = malloc(40); /* freed again at once */
    kept[handled] = malloc(HANDLER_SIZE);              /* @leak:handler */
    sink += (unsigned long)scratch;
    free(scratch);
    handled = handled + 1;
    if (handled >= TARGET) stop_timer();
}

int main(void)
{
    free(malloc(40));
    free(malloc(HANDLER_SIZE));
    free(malloc(MAIN_SIZE_A));
    free(malloc(MAIN_SIZE_B));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = { { 0, 50 }, { 0, 50 } };
    setitimer(ITIMER_REAL, &every, NULL);
    unsigned long i = 0;
    while (handled < TARGET) {
        void *p = malloc(i++ % 2 ? MAIN_SIZE_A : MAIN_SIZE_B);
        sink += (unsigned long)p;
        free(p);
    }
    printf("handler blocks: %d\n", (int)handled);
    return 0;
}
