/* As sshd starts: as root, drops its supplementary groups (setgroups(0, NULL): the shim then
 * opens its capture's file early, privileges.c), then closes every descriptor from 3 on.
 * With argv[1] "reuse" it then puts a file of its own (argv[2]) under every number that was
 * open before the close, and writes one line into it at the end. Leaks 48 bytes; exits 5.
 * With argv[1] "child" it does not close: a forked child chroots into argv[2] (as sshd's
 * sandboxed child does after its parent dropped its groups), leaks 48 bytes there too and
 * exits 6; the parent waits for it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    if (setgroups(0, NULL) != 0) {
        perror("setgroups");
        return 1;
    }
    if (argc > 2 && !strcmp(argv[1], "child")) {
        pid_t child = fork();
        if (child < 0) return 1;
        if (child == 0) {
            if (chroot(argv[2]) != 0 || chdir("/") != 0) return 1;
            sink = malloc(48); /* @leak:in_the_child */
            sink = NULL;
            return 6;
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 1;
        printf("child %d\n", WEXITSTATUS(status));
        return 5;
    }
    int was_open[64], nopen = 0;
    DIR *fds = opendir("/proc/self/fd");
    if (!fds) return 1;
    int own = dirfd(fds);
    for (struct dirent *e; (e = readdir(fds)) && nopen < 64;) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != own) was_open[nopen++] = fd;
    }
    closedir(fds);
    closefrom(3);
    int mine = -1;
    if (argc > 2 && !strcmp(argv[1], "reuse")) {
        mine = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (mine < 0) return 1;
        for (int i = 0; i < nopen; i++)
            if (was_open[i] != mine && dup2(mine, was_open[i]) < 0) return 1;
    }
    sink = malloc(48); /* @leak:after_close */
    sink = NULL;
    if (mine >= 0 && write(mine, "the program's line\n", 19) != 19) return 1;
    printf("closed %d\n", nopen);
    return 5;
}
