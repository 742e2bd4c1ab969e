/* A SIGPROF handler (a signal `leaktrace run` does not pass on, so the handler runs at once)
 * that forks while the main thread maps and unmaps memory without a pause: the signal mostly
 * finds the thread inside the shim's mapping hooks, which hold its regions lock. fork() is
 * async-signal-safe; the child ends at once. Prints how many forks were made. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 100

static volatile sig_atomic_t forks;

static void fork_and_wait(int sig)
{
    (void)sig;
    pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0 && waitpid(child, NULL, 0) == child) forks = forks + 1;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fork_and_wait;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } };
    setitimer(ITIMER_PROF, &every_ms, NULL);
    while (forks < FORKS) {
        void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) munmap(m, 8192);
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_PROF, &off, NULL);
    printf("forked %d times\n", (int)forks);
    return 0;
}
