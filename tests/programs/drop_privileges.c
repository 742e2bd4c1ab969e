/* Started as root, drops to the user `nobody` (setgroups, setgid, setuid), as a daemon does:
 * leaks 64 bytes before the drop and 96 after, then exits with status 13 (or, with argv[1]
 * "kill", kills itself with SIGKILL). Afterwards it may no longer create its capture in the
 * run's directory. */
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;

int main(int argc, char **argv)
{
    sink = malloc(64); /* @leak:before_drop */
    sink = NULL;
    struct passwd *nobody = getpwnam("nobody");
    if (!nobody || setgroups(0, NULL) != 0 || setgid(nobody->pw_gid) != 0 ||
        setuid(nobody->pw_uid) != 0) {
        perror("drop privileges");
        return 1;
    }
    sink = malloc(96); /* @leak:after_drop */
    sink = NULL;
    printf("now uid %d\n", (int)getuid());
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "kill")) raise(SIGKILL);
    return 13;
}
