/* A program that gives its children an environment of its own making, as `env -i`, clearenv()
 * and Python's subprocess with env= do: it clears its environment, then runs itself as a child
 * by fork and execl (the child loses 66 bytes), by vfork and execve with an empty environment
 * (99 bytes), and by posix_spawn with an environment of one variable (123 bytes). With
 * --follow-children all three are traced all the same, as under valgrind's
 * --trace-children=yes. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

static int wait_for(pid_t pid)
{
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        size_t size = strcmp(argv[1], "forked") == 0 ? 66 : strcmp(argv[1], "vforked") == 0 ? 99 : 123;
        sink = malloc(size); /* @leak:child */
        sink = NULL;
        return 0;
    }
    clearenv();
    pid_t pid = fork();
    if (pid == 0) {
        execl(argv[0], argv[0], "forked", (char *)NULL);
        _exit(127);
    }
    int failed = wait_for(pid);
    char *const no_environment[] = { NULL };
    char *const args[] = { argv[0], "vforked", NULL };
    pid = vfork();
    if (pid == 0) {
        execve(argv[0], args, no_environment);
        _exit(127);
    }
    failed |= wait_for(pid);
    char *const one_variable[] = { "ONLY=this", NULL };
    char *const spawned[] = { argv[0], "spawned", NULL };
    if (posix_spawn(&pid, argv[0], NULL, NULL, spawned, one_variable) != 0) return 1;
    return failed | wait_for(pid);
}
