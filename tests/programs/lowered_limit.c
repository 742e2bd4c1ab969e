/* Lowers one of its own resource limits, then exits. Leaks 48 bytes first.
 * argv[1] "nofile": RLIMIT_NOFILE to 16 descriptors, then opens /dev/null until EMFILE, says
 *   how many it got, and exits with them open.
 * argv[1] "fsize": RLIMIT_FSIZE to 0, as OpenSSH's sandboxed child does: a write to a file past
 *   the limit raises SIGXFSZ, whose default action kills. Its output goes to a pipe, which the
 *   limit does not cover.
 * argv[2]: "soft" lowers only the soft limit, "hard" both, "inherited" neither (the limit is
 *   the one the program was started with). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void *volatile sink;

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    int nofile = !strcmp(argv[1], "nofile");
    sink = malloc(48); /* @leak:before_limit */
    sink = NULL;
    int resource = nofile ? RLIMIT_NOFILE : RLIMIT_FSIZE;
    struct rlimit rl;
    getrlimit(resource, &rl);
    rl.rlim_cur = nofile ? 16 : 0;
    if (!strcmp(argv[2], "hard")) rl.rlim_max = rl.rlim_cur;
    if (strcmp(argv[2], "inherited") != 0 && setrlimit(resource, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    if (!nofile) {
        puts("limited");
        return 0;
    }
    int opened = 0;
    while (open("/dev/null", O_RDONLY) >= 0) opened++;
    printf("opened %d descriptors\n", opened);
    return 0;
}
