/* The parent leaks 111 bytes once; a forked child leaks 222 bytes twice and exits. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

int main(void)
{
    sink = malloc(111); /* @leak:parent */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 2; i++) sink = malloc(222); /* @leak:child */
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
