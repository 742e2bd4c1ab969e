/* A thread that blocks every signal leaves the only pointer to its block on its stack, below
 * its stack pointer, and ends 0.3 s after main returns, while the exit scan runs. It cannot
 * stop for the scan; its stack is read from where it waits, so the block is definitely lost
 * (as valgrind says). glibc blocks every signal in a thread's last steps too, and the kernel
 * wakes a joiner while the joined thread is still leaving. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int pointer_left;

/* The pointer sits at the far end of a 4 KiB frame: the frames the thread runs after this one
 * (a sleep, glibc's thread exit) do not reach down to it. */
static __attribute__((noinline)) void leave_pointer_deep(void)
{
    void *volatile slots[512];
    slots[0] = malloc(900); /* @leak:leaving */
    memset(slots[0], 1, 900);
}

static void *worker(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    leave_pointer_deep();
    atomic_store(&pointer_left, 1);
    struct timespec wait = { 0, 300 * 1000000L };
    nanosleep(&wait, NULL);
    return NULL;
}

int main(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, worker, NULL) != 0) return 3;
    while (!atomic_load(&pointer_left)) sched_yield();
    return 0; /* the worker ends 0.3 s later, during the exit scan */
}
