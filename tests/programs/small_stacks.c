/* The shim's end-of-run work on a thread with little stack. argv[1]:
 *   thread-exit     a thread made with a 32 KiB stack calls exit(7);
 *   altstack-raise  a SIGSEGV handler on a 16 KiB alternate stack puts the default back and
 *                   raises the signal again, as Python's faulthandler does;
 *   altstack-return the same handler returns instead, and the fault happens again.
 * Each first leaks one 24-byte block. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scrub_stack.h"

void *volatile sink;
static struct sigaction previous;
static int raise_again;

__attribute__((noinline)) static void leak(void)
{
    sink = malloc(24); /* @leak:small_stack */
    sink = NULL;
}

static void *exit_from_here(void *arg)
{
    (void)arg;
    leak();
    exit(7);
}

static void on_fault(int sig)
{
    sigaction(sig, &previous, NULL);
    if (raise_again) raise(sig);
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    if (strcmp(argv[1], "thread-exit") == 0) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 32 << 10);
        pthread_t thread;
        if (pthread_create(&thread, &attr, exit_from_here, NULL) != 0) return 3;
        pause();
        return 0;
    }
    raise_again = strcmp(argv[1], "altstack-raise") == 0;
    below(leak);
    scrub_stack(); /* and with it the registers that held the block's address */
    static char alternate[16 << 10];
    stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate };
    sigaltstack(&ss, NULL);
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_fault;
    act.sa_flags = SA_NODEFER | SA_ONSTACK;
    sigaction(SIGSEGV, &act, &previous);
    *(volatile int *)sink = 1; /* sink is NULL */
    return 0;
}
