/* Leaks made inside signal handlers, whose backtraces must go on through the kernel's signal
 * frame into the code the signal interrupted, as valgrind's do:
 *   64 B  a timer's SIGALRM interrupting a busy loop (the interrupted frame: the loop's line)
 *   96 B  a SIGSEGV at the first instruction of a function (at -O2 `movl $1, (%rdi)`: looked
 *         up one byte early, the frame would be the function before it), the handler on an
 *         alternate signal stack, left by siglongjmp */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static void *volatile sink[2];
static volatile sig_atomic_t alarmed;
static sigjmp_buf after_fault;
static int *volatile nowhere; /* NULL: the store through it faults */

__attribute__((noinline)) static void on_alarm(int sig)
{
    (void)sig;
    sink[0] = malloc(64); /* @leak:on_alarm */
    alarmed = 1;
}

__attribute__((noinline)) static void on_fault(int sig)
{
    (void)sig;
    sink[1] = malloc(96); /* @leak:on_fault */
    siglongjmp(after_fault, 1);
}

__attribute__((noinline)) static void spin_until_alarmed(void)
{
    while (!alarmed) /* @call:spin */
        ;
}

__attribute__((noinline)) void store_one(int *where)
{
    *where = 1; /* @call:store_one */
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval timer = { .it_value = { .tv_usec = 20000 } };
    setitimer(ITIMER_REAL, &timer, NULL);
    spin_until_alarmed(); /* @call:main_spin */

    static char alternate[1 << 16];
    stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate };
    sigaltstack(&ss, NULL);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(after_fault, 1) == 0) store_one(nowhere); /* @call:main_fault */
    return 0;
}
