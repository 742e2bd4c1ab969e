/* Limits the size of the files it may write to 0 (RLIMIT_FSIZE, as OpenSSH's sandboxed child
 * does) and exits: a write past the limit raises SIGXFSZ, whose default action kills. Leaks 48
 * bytes. argv[1]: "soft" lowers only the soft limit, "hard" both. Its output goes to a pipe,
 * which the limit does not cover. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void *volatile sink;

int main(int argc, char **argv)
{
    sink = malloc(48); /* @leak:before_limit */
    sink = NULL;
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = 0;
    if (argc > 1 && !strcmp(argv[1], "hard")) rl.rlim_max = 0;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    puts("limited");
    return 0;
}
