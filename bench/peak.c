/* Runs a program and prints its peak resident set size, for the benchmark's real programs
 * (bench/workloads.py), which do not print their own.
 *
 *     peak PROGRAM [ARG...]   prints "peak rss: N KiB" on stderr, exits as PROGRAM did
 *
 * Built statically, so LD_PRELOAD (the tracer under test) reaches only PROGRAM; and run
 * from a process of its own, because wait4()'s ru_maxrss of a child that posix_spawn started
 * from the benchmark's Python starts at that Python's high-water mark. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("peak: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        perror("peak: exec");
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("peak: wait4");
        return 2;
    }
    fprintf(stderr, "peak rss: %ld KiB\n", usage.ru_maxrss);
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
