/* Started as root, drops to the user `nobody` (setgroups, setgid, setuid), as a daemon does:
 * leaks 64 bytes before the drop and 96 after, then exits with status 13 (or, with argv[1]
 * "kill", kills itself with SIGKILL; with "child", a forked child drops first, before any
 * allocation, then leaks both, and the parent exits with its status; with "wait", it prints
 * its pid after the drop and waits for a line on stdin before it exits). Afterwards it may no
 * longer create its capture in the run's directory. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    struct passwd *nobody = getpwnam("nobody");
    if (argc > 1 && !strcmp(argv[1], "child")) {
        pid_t child = fork();
        if (child < 0) return 1;
        if (child > 0) {
            int status;
            if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 1;
            return WEXITSTATUS(status);
        }
        /* The child drops first, before it allocates anything. */
        if (!nobody || setgroups(0, NULL) != 0 || setgid(nobody->pw_gid) != 0 ||
            setuid(nobody->pw_uid) != 0)
            return 1;
    }
    sink = malloc(64); /* @leak:before_drop */
    sink = NULL;
    if (!nobody || (getuid() == 0 && (setgroups(0, NULL) != 0 || setgid(nobody->pw_gid) != 0 ||
                                      setuid(nobody->pw_uid) != 0))) {
        perror("drop privileges");
        return 1;
    }
    sink = malloc(96); /* @leak:after_drop */
    sink = NULL;
    printf("now uid %d\n", (int)getuid());
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "kill")) raise(SIGKILL);
    if (argc > 1 && !strcmp(argv[1], "wait")) {
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 1;
    }
    return 13;
}
