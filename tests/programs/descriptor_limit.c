/* Uses up its file descriptors (RLIMIT_NOFILE) and exits with them open: leaks 48 bytes,
 * lowers its limit to 16 descriptors, opens /dev/null until EMFILE and says how many it got.
 * argv[1]: "soft" lowers only the soft limit, "hard" both. */
#include <fcntl.h>
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
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 16;
    if (argc > 1 && !strcmp(argv[1], "hard")) rl.rlim_max = 16;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    int opened = 0;
    while (open("/dev/null", O_RDONLY) >= 0) opened++;
    printf("opened %d descriptors\n", opened);
    return 0;
}
