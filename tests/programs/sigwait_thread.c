/* The sigwait design: main blocks every signal before it starts a thread, and one thread takes
 * them all with sigwait(), printing each. A scan's signal sent to such a thread would be taken
 * as the program's own ("got signal 63"): leaktrace must not send it. The signal thread cannot
 * stop for a scan, so its stack is read from where it waits: a block it keeps in its live
 * frame is still reachable, one whose pointer lies below its stack pointer (in a frame that has
 * returned) is definitely lost, as valgrind says. A second thread waits in read() into a block
 * whose only pointer (at -O2) is in registers: the system call's arguments, which /proc shows,
 * keep it reachable.
 * Usage: sigwait_thread          ends by itself
 *        sigwait_thread serve    prints its pid, then waits for SIGTERM (exit status 4) */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int waiting;

/* 16 KiB deep: the frames the thread runs after this one (malloc, sigwait) stay above it. */
static __attribute__((noinline)) void leave_stale_pointer(void)
{
    void *volatile slots[2048];
    slots[0] = malloc(500); /* @leak:stale */
    memset(slots[0], 1, 500);
}

static void *signal_thread(void *arg)
{
    const sigset_t *all = arg;
    leave_stale_pointer();
    void *volatile kept = malloc(600); /* @leak:kept */
    memset(kept, 2, 600);
    atomic_store(&waiting, 1);
    for (;;) {
        int sig;
        if (sigwait(all, &sig) != 0) continue;
        printf("signal thread got signal %d\n", sig);
        fflush(stdout);
        if (sig == SIGTERM) exit(4);
    }
    return NULL;
}

static int never_written[2];

/* Clears what malloc's frames left below the caller (a leaf: no register of the caller is
 * saved on the stack). */
static __attribute__((noinline)) void clear_below(void)
{
    volatile char area[1024];
    for (unsigned i = 0; i < sizeof area; i++) area[i] = 0;
}

static void *reading_thread(void *arg)
{
    (void)arg;
    char *buffer = malloc(800); /* @leak:reading */
    clear_below();
    return (void *)syscall(SYS_read, never_written[0], buffer, 800);
}

int main(int argc, char **argv)
{
    static sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_t thread;
    if (pipe(never_written) != 0 || pthread_create(&thread, NULL, signal_thread, &all) != 0 ||
        pthread_create(&thread, NULL, reading_thread, NULL) != 0)
        return 3;
    while (!atomic_load(&waiting)) sched_yield();
    struct timespec moment = { 0, 20 * 1000000L };
    nanosleep(&moment, NULL); /* the threads wait in sigwait() and read() by now */
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        printf("%d ready\n", (int)getpid());
        fflush(stdout);
        struct timespec minute = { 60, 0 };
        nanosleep(&minute, NULL);
        return 5;
    }
    puts("main done");
    return 0;
}
