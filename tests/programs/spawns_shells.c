/* Starts shells the ways glibc does inside itself, past the exec hooks: system() and popen().
 * Prints how many of leaktrace's settings (LEAKTRACE_*, LD_PRELOAD) it and each shell's `env`
 * see (none natively), the shells' statuses, whether SIGINT sent by the shell to its parent
 * during system() was ignored (as system() does), and SIGINT's disposition afterwards. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

#define COUNT_SETTINGS "env | grep -c -E '^(LEAKTRACE_|LD_PRELOAD=)'"

int main(void)
{
    int seen = 0;
    for (char **e = environ; *e; e++)
        seen += strncmp(*e, "LEAKTRACE_", 10) == 0 || strncmp(*e, "LD_PRELOAD=", 11) == 0;
    printf("own environment: %d\n", seen);
    fflush(stdout);
    int status = system(COUNT_SETTINGS "; exit 3");
    printf("system: %d\n", WEXITSTATUS(status));
    status = system("kill -INT $PPID; exit 4");
    printf("survived SIGINT during system: %d\n", WEXITSTATUS(status));
    FILE *shell = popen(COUNT_SETTINGS, "r");
    char line[64] = "";
    if (!shell || !fgets(line, sizeof line, shell)) return 1;
    printf("popen: %s", line);
    printf("pclose: %d\n", WEXITSTATUS(pclose(shell)));
    struct sigaction now;
    sigaction(SIGINT, NULL, &now);
    printf("SIGINT afterwards: %s\n", now.sa_handler == SIG_DFL ? "default" : "changed");
    return 0;
}
