/* Leaks, then dies the way argv[1] says: a fault (segv, bus, fpe, ill), abort(), or a signal
 * sent to itself (term, hup, quit, int, and rt: the real-time signal SIGRTMIN + 2). A capture must still be written, and the process
 * must still die of that signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *volatile kept;

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
        *(volatile int *)16 = 1;
    } else if (strcmp(how, "bus") == 0) {
        FILE *f = tmpfile();
        volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        return m[0]; /* past the end of an empty file */
    } else if (strcmp(how, "fpe") == 0) {
        volatile int one = 1, zero = 0;
        volatile int quotient = one / zero;
        return quotient;
    } else if (strcmp(how, "ill") == 0) {
        __builtin_trap();
    } else if (strcmp(how, "abort") == 0) {
        abort();
    } else {
        int sig = strcmp(how, "term") == 0 ? SIGTERM : strcmp(how, "hup") == 0 ? SIGHUP
                : strcmp(how, "quit") == 0 ? SIGQUIT : strcmp(how, "rt") == 0 ? SIGRTMIN + 2 : SIGINT;
        kill(getpid(), sig);
        pause();
    }
    return 0;
}
