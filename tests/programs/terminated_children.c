/* Forks argv[1] children and sends each SIGTERM as soon as fork() returns (a pool terminated
 * as it starts): each child, if it gets that far, leaks 48 bytes and waits for the signal.
 * Prints how many children SIGTERM ended (all of them, natively). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    int children = argc > 1 ? atoi(argv[1]) : 20, terminated = 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            sink = malloc(48); /* @leak:child */
            sink = NULL;
            for (;;) pause();
        }
        kill(pid, SIGTERM);
        int status;
        if (waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
            terminated++;
    }
    printf("%d of %d children ended by SIGTERM\n", terminated, children);
    return 0;
}
