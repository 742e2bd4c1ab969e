/* Hits its address-space limit (RLIMIT_AS) and carries on, as a program that handles
 * malloc's NULL does: leaks 48 bytes, sets its limit 64 MiB above what it uses, fills that
 * with blocks it keeps (still reachable), and exits with status 14. argv[1]: "soft" lowers
 * only the soft limit (the hard one stays unlimited), "hard" both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void *volatile sink;
void *kept[1 << 16]; /* external: the compiler keeps every store */

static size_t address_space_used(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * 4096;
}

int main(int argc, char **argv)
{
    int hard = argc > 1 && !strcmp(argv[1], "hard");
    sink = malloc(48); /* @leak:before_limit */
    sink = NULL;
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = address_space_used() + (64u << 20);
    if (hard) rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    size_t n = 0, sizes[] = { 1u << 20, 64u << 10, 4u << 10 };
    for (size_t s = 0; s < 3; s++)
        while (n < sizeof kept / sizeof *kept && (kept[n] = malloc(sizes[s])) != NULL) /* @leak:fill */
            n++;
    printf("malloc failed after %s blocks; carrying on\n", n > 50 ? "many" : "few");
    return 14;
}
