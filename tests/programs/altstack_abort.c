/* A fault handler on a small alternate stack (glibc's SIGSTKSZ, as Rust's stack-overflow
 * handler has) that calls abort() once it has used some of it: the program dies of SIGABRT.
 * The shim's SIGABRT handler runs on what is left of that stack: its first call of a libc
 * function, bound lazily, overflowed it (a death by SIGSEGV, no capture). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile kept;

static void on_segv(int sig)
{
    (void)sig;
    volatile char used[256]; /* what the handler's own work costs */
    memset((char *)used, 1, sizeof used);
    static const char msg[] = "fault, aborting\n";
    write(1, msg, sizeof msg - 1);
    abort();
}

int main(void)
{
    kept = malloc(64); /* still reachable at the capture */
    static char alternate[8192];
    stack_t ss = { .ss_sp = alternate, .ss_size = sizeof alternate };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    raise(SIGSEGV);
    return 0;
}
