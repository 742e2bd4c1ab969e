/* Leaks, then dies the way argv[1] says: a fault (segv, bus, fpe, ill), abort(), or a signal
 * sent to itself (term, hup, quit, int, and rt: the real-time signal SIGRTMIN + 2); or a fault
 * in a thread named "worker-7" (thread-segv), a call through a NULL function pointer
 * (call-null), a double free glibc aborts on (double-free), a fault whose handler raises it
 * again, as Python's faulthandler does (reraise), eight threads calling abort() at once
 * (aborts). A capture must still be written,
 * and the process must still die of that signal. Each death's line has a @call:die-<how>
 * marker: the report's backtrace of the signal names it. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

void *volatile kept;
void (*volatile no_function)(void);

__attribute__((noinline)) static void fault_in_thread(void)
{
    *(volatile int *)24 = 1; /* @call:die-thread-segv */
}

static void *worker(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "worker-7");
    fault_in_thread();
    return NULL;
}

/* As Python's faulthandler: the default action back, the signal raised again at once (its
 * handler has SA_NODEFER), on an alternate stack. */
static volatile int reraised;
static void reraise(int sig)
{
    signal(sig, SIG_DFL);
    raise(sig); /* @call:die-reraise-handler */
    reraised = 1; /* never reached; keeps the raise from being a tail call at -O2 */
}

static pthread_barrier_t all_ready;

static void *aborter(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&all_ready);
    abort(); /* @call:die-aborts */
}

__attribute__((noinline)) static void release(void *p)
{
    free(p); /* @call:die-double-free */
}

__attribute__((noinline)) static void leak(void)
{
    void *volatile p = malloc(100); /* @leak:crash */
    p = NULL;
    (void)p;
}

int main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "segv";
    for (int i = 0; i < 3; i++) leak();
    kept = malloc(40); /* @leak:kept */
    printf("about to die: %s\n", how);
    fflush(stdout);
    if (strcmp(how, "segv") == 0) {
        *(volatile int *)16 = 1; /* @call:die-segv */
    } else if (strcmp(how, "bus") == 0) {
        FILE *f = tmpfile();
        volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        return m[0]; /* past the end of an empty file @call:die-bus */
    } else if (strcmp(how, "fpe") == 0) {
        volatile int one = 1, zero = 0;
        volatile int quotient = one / zero; /* @call:die-fpe */
        return quotient;
    } else if (strcmp(how, "ill") == 0) {
        __builtin_trap(); /* @call:die-ill */
    } else if (strcmp(how, "abort") == 0) {
        abort(); /* @call:die-abort */
    } else if (strcmp(how, "thread-segv") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
    } else if (strcmp(how, "call-null") == 0) {
        no_function(); /* @call:die-call-null */
    } else if (strcmp(how, "aborts") == 0) {
        pthread_t t[8];
        pthread_barrier_init(&all_ready, NULL, 8);
        for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, aborter, NULL);
        pthread_join(t[0], NULL);
    } else if (strcmp(how, "reraise") == 0) {
        static char altstack[65536];
        stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
        sigaltstack(&ss, NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = reraise;
        sa.sa_flags = SA_NODEFER | SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        *(volatile int *)32 = 1; /* @call:die-reraise */
    } else if (strcmp(how, "double-free") == 0) {
        void *p = malloc(24);
        release(p);
        release(p); /* @call:die-double-free-again */
    } else {
        int sig = strcmp(how, "term") == 0 ? SIGTERM : strcmp(how, "hup") == 0 ? SIGHUP
                : strcmp(how, "quit") == 0 ? SIGQUIT : strcmp(how, "rt") == 0 ? SIGRTMIN + 2 : SIGINT;
        kill(getpid(), sig); /* @call:die-sent */
        pause();
    }
    return 0;
}
